#include "../ktbase.h"
