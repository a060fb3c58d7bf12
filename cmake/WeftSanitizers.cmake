# WEFT_SANITIZE=thread: ThreadSanitizer. WEFT_SANITIZE=address: AddressSanitizer
# + UndefinedBehaviorSanitizer (+ LeakSanitizer, which ASan includes on Linux).
# Applied globally so that the library, tests, examples and benchmarks agree.
if(WEFT_SANITIZE STREQUAL "thread")
  add_compile_options(-fsanitize=thread -fno-omit-frame-pointer)
  add_link_options(-fsanitize=thread)
  add_compile_definitions(WEFT_SANITIZE_THREAD=1)
elseif(WEFT_SANITIZE STREQUAL "address")
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
  add_compile_definitions(WEFT_SANITIZE_ADDRESS=1)
elseif(NOT WEFT_SANITIZE STREQUAL "")
  message(FATAL_ERROR "WEFT_SANITIZE must be '', 'thread' or 'address'")
endif()
