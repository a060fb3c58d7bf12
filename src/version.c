/*
 * Library version (weft/version.h).
 */
#include "weft/version.h"

#define WEFT_STR_(x) #x
#define WEFT_STR(x) WEFT_STR_(x)

unsigned int weft_version(void) { return WEFT_VERSION_HEX; }

const char *weft_version_string(void) {
  return WEFT_STR(WEFT_VERSION_MAJOR) "." WEFT_STR(
      WEFT_VERSION_MINOR) "." WEFT_STR(WEFT_VERSION_PATCH);
}
