/*
 * void cio__switch(void **save, void *to)   (System V AMD64)
 *
 * Saves the callee-saved registers, MXCSR and the x87 control word on the
 * current stack, stores the stack pointer in *save, switches to 'to' and
 * restores the same set from there. Everything else is caller-saved, so a
 * switch costs a handful of pushes and pops and no system call (glibc's
 * swapcontext makes an rt_sigprocmask call on every switch).
 *
 * It ends with a plain ret although the return-stack predictor then misses
 * once per switch: pop+jmp (boost.context's way) measured 5 ns in the first
 * loop of a process but ~45 ns in later ones on this kernel (IBRS/retbleed
 * mitigations), against a steady ~13 ns for ret (corio-bench core).
 *
 * Frame (growing down): ret, rbp, rbx, r12, r13, r14, r15, [mxcsr|fpcw].
 * coro.c builds the same frame for a fresh coroutine, with 'ret' pointing
 * at cio__coro_start, r12 = task and r13 = entry function.
 *
 * CET: both entry points start with endbr64, so this file is compatible
 * with indirect branch tracking (IBT) and its GNU property note says so.
 * It must NOT claim shadow stacks (SHSTK): a shadow stack follows the
 * thread, not rsp, so after switching to another coroutine's stack the
 * 'ret' below would not match the shadow stack's return address and fault.
 * The linker ANDs the notes of all objects, so a binary linking this switch
 * never asks for shadow stacks, whatever -fcf-protection gave the C code.
 */
    .text
    .globl  cio__switch
    .hidden cio__switch
    .type   cio__switch, @function
    .p2align 4
cio__switch:
    .cfi_startproc
    endbr64
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movq    %rsp, (%rdi)
    movq    %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw   4(%rsp)
    addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   cio__switch, .-cio__switch

/* First entry of a coroutine: 'ret' of cio__switch lands here with a
 * 16-byte aligned stack. Calls entry(task); entry never returns. */
    .globl  cio__coro_start
    .hidden cio__coro_start
    .type   cio__coro_start, @function
    .p2align 4
cio__coro_start:
    .cfi_startproc
    .cfi_undefined rip
    endbr64
    xorl    %ebp, %ebp
    movq    %r12, %rdi
    callq   *%r13
    ud2
    .cfi_endproc
    .size   cio__coro_start, .-cio__coro_start

    .section .note.GNU-stack,"",@progbits

/* GNU property note: x86 feature IBT, and not SHSTK (see the top). */
    .section .note.gnu.property,"a",@note
    .p2align 3
    .long   4               /* name size: "GNU" and its NUL */
    .long   16              /* descriptor size */
    .long   5               /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .long   0xc0000002      /* GNU_PROPERTY_X86_FEATURE_1_AND */
    .long   4               /* its data size */
    .long   1               /* GNU_PROPERTY_X86_FEATURE_1_IBT; SHSTK (2) left out */
    .p2align 3
