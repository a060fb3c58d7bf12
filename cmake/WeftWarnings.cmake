# Warnings for every weft target: clean under -Wall -Wextra -Wpedantic,
# -Werror when WEFT_WERROR is set (CI sets it).
add_library(weft_warnings INTERFACE)
target_compile_options(weft_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
    -Wmissing-prototypes -Wno-unused-parameter>)
if(WEFT_WERROR)
  target_compile_options(weft_warnings INTERFACE $<$<COMPILE_LANGUAGE:C>:-Werror>)
endif()
