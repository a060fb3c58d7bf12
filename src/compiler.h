/*
 * Compiler helpers shared by every layer of src/ (a leaf: no weft types).
 */
#ifndef WEFT_COMPILER_H
#define WEFT_COMPILER_H

#if defined(__GNUC__) && !defined(__clang__)
#define WEFT__NOIPA __attribute__((noinline, noipa))
#else
#define WEFT__NOIPA __attribute__((noinline))
#endif
#define WEFT__LIKELY(x) __builtin_expect(!!(x), 1)
#define WEFT__UNLIKELY(x) __builtin_expect(!!(x), 0)

#endif /* WEFT_COMPILER_H */
