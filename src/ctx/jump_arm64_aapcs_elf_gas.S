/*
 * AArch64 AAPCS64 context switch (ELF, GNU as).
 *
 * void weft__ctx_switch(weft__ctx_t *from, weft__ctx_t *to)
 *
 * Saved frame (0xb0 bytes), from the saved stack pointer upwards:
 *   0x00: d8..d15   0x40: x19..x28   0x90: x29 (fp), x30 (resume address)
 *   0xa0: FPCR
 *
 * The resume address is reached with `br`, not `ret`, for the same reason as
 * on x86-64: the return-address predictor never saw a matching call.
 */
        .text
        .globl  weft__ctx_switch
        .hidden weft__ctx_switch
        .type   weft__ctx_switch,%function
        .p2align 4
weft__ctx_switch:
        .cfi_startproc
        sub     sp, sp, #0xb0
        stp     d8,  d9,  [sp, #0x00]
        stp     d10, d11, [sp, #0x10]
        stp     d12, d13, [sp, #0x20]
        stp     d14, d15, [sp, #0x30]
        stp     x19, x20, [sp, #0x40]
        stp     x21, x22, [sp, #0x50]
        stp     x23, x24, [sp, #0x60]
        stp     x25, x26, [sp, #0x70]
        stp     x27, x28, [sp, #0x80]
        stp     x29, x30, [sp, #0x90]
        mrs     x9, fpcr
        str     x9, [sp, #0xa0]
        mov     x9, sp
        str     x9, [x0]
        ldr     x9, [x1]
        mov     sp, x9
        ldp     d8,  d9,  [sp, #0x00]
        ldp     d10, d11, [sp, #0x10]
        ldp     d12, d13, [sp, #0x20]
        ldp     d14, d15, [sp, #0x30]
        ldp     x19, x20, [sp, #0x40]
        ldp     x21, x22, [sp, #0x50]
        ldp     x23, x24, [sp, #0x60]
        ldp     x25, x26, [sp, #0x70]
        ldp     x27, x28, [sp, #0x80]
        ldp     x29, x30, [sp, #0x90]
        ldr     x9, [sp, #0xa0]
        msr     fpcr, x9
        add     sp, sp, #0xb0
        br      x30
        .cfi_endproc
        .size   weft__ctx_switch,.-weft__ctx_switch

/* First code of a fresh context: fn in x19, its argument in x20. */
        .globl  weft__ctx_trampoline
        .hidden weft__ctx_trampoline
        .type   weft__ctx_trampoline,%function
        .p2align 4
weft__ctx_trampoline:
        .cfi_startproc
        .cfi_undefined x30
        mov     x29, #0
        mov     x0, x20
        blr     x19
        brk     #0
        .cfi_endproc
        .size   weft__ctx_trampoline,.-weft__ctx_trampoline

        .section .note.GNU-stack,"",%progbits
