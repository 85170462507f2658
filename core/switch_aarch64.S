/*
 * void cio__switch(void **save, void *to)   (AAPCS64)
 *
 * Saves x19-x30 and d8-d15 (the callee-saved set) in a 160-byte frame on
 * the current stack, stores sp in *save, switches to 'to' and restores.
 * coro.c builds the same frame for a fresh coroutine, with x30 (the return
 * address) = cio__coro_start, x19 = task and x20 = entry function.
 *
 * Branch target identification: both entry points start with 'bti c'
 * (written as its hint, a no-op on cores without BTI), so the file is
 * BTI-compatible and its GNU property note says so. It claims nothing about
 * PAC: return addresses pass through here unsigned, in x30 and the frame.
 * The linker ANDs the notes of all objects.
 */
    .text
    .globl  cio__switch
    .hidden cio__switch
    .type   cio__switch, %function
    .p2align 4
cio__switch:
    hint    #34             /* bti c */
    sub     sp, sp, #160
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mov     x2, sp
    str     x2, [x0]
    mov     sp, x1
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #160
    /* ret, as on x86-64 (see switch_x86_64.S for why); an indirect br to a
     * call site would also fault where BTI is enforced. */
    ret
    .size   cio__switch, .-cio__switch

    .globl  cio__coro_start
    .hidden cio__coro_start
    .type   cio__coro_start, %function
    .p2align 4
cio__coro_start:
    hint    #34             /* bti c */
    mov     x29, #0
    mov     x0, x19
    blr     x20
    brk     #0
    .size   cio__coro_start, .-cio__coro_start

    .section .note.GNU-stack,"",%progbits

/* GNU property note: AArch64 feature BTI (see the top). */
    .section .note.gnu.property,"a",%note
    .p2align 3
    .word   4               /* name size: "GNU" and its NUL */
    .word   16              /* descriptor size */
    .word   5               /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .word   0xc0000000      /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .word   4               /* its data size */
    .word   1               /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI; PAC (2) left out */
    .word   0               /* pad to 8 bytes */
