/*
 * coro.c - coroutine stacks and context switching.
 *
 * Stacks are carved from slabs of 64 slots, mapped MAP_NORESERVE so that only
 * touched pages cost memory. Each slot is [guard page][stack...][descriptor].
 * The guard page is installed with MADV_GUARD_INSTALL (Linux 6.13+), which
 * does not split the mapping, so a million stacks do not run into
 * vm.max_map_count; older kernels get an mprotect()ed page instead (two
 * mappings per stack, so about 30,000 live coroutines with the default
 * vm.max_map_count of 65530).
 *
 * Released stacks go to a LIFO free list (the hottest is reused first). A
 * weak timer trims free stacks beyond the warm ones once a second with
 * MADV_DONTNEED, so one deep call does not pin memory forever, without a
 * system call on the spawn/exit path.
 */
#include "cio_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef CIO_HAVE_VALGRIND
#include <valgrind/valgrind.h>
#endif
#if CIO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define SLAB_SLOTS  64
#define STACKS_WARM 64
#define TRIM_PERIOD CIO_SEC(1)
#define TRIM_BATCH  4096

void cio__task_main(cio_task *t); /* task.c */

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

static void trim_tick(cio_timer *t)
{
    cio_loop *l = t->loop;
    cio__stacks_trim(l, STACKS_WARM);
}

void cio__stacks_init(cio_loop *l, size_t stack_size)
{
    size_t ps = page_size();
    if (stack_size == 0)
        stack_size = 64 * 1024;
#if CIO_ASAN
    stack_size *= 4; /* instrumented frames are several times larger */
#endif
    if (stack_size < 16 * 1024)
        stack_size = 16 * 1024;
    stack_size = (stack_size + ps - 1) & ~(ps - 1);
    l->stack_size = stack_size;
    l->slot_size = stack_size + ps;
    l->guard_madvise = true;
    l->stack_free = NULL;
    l->stack_free_len = 0;
    l->slabs = NULL;
    l->slab_next = l->slab_end = NULL;
    l->stacks_mapped = 0;
    cio_timer_init_weak(&l->trim_timer, l, trim_tick);
}

static void stack_release_mapping(cio__stack *s)
{
#ifdef CIO_HAVE_VALGRIND
    VALGRIND_STACK_DEREGISTER(s->vg_id);
#else
    (void)s;
#endif
}

void cio__stacks_fini(cio_loop *l)
{
    cio_timer_stop(&l->trim_timer);
    for (cio__stack *s = l->stack_free; s; s = s->next)
        stack_release_mapping(s);
    l->stack_free = NULL;
    cio__slab *sl = l->slabs;
    while (sl) {
        cio__slab *next = sl->next;
        void *base = sl->base;
        size_t len = sl->len;
        free(sl);
        munmap(base, len);
        sl = next;
    }
    l->slabs = NULL;
    l->slab_next = l->slab_end = NULL;
}

void cio__ctx_first_entry(cio_task *t)
{
#if CIO_ASAN
    __sanitizer_finish_switch_fiber(NULL, &t->loop->main_stack_bottom, &t->loop->main_stack_size);
#else
    (void)t;
#endif
}

static int slab_new(cio_loop *l)
{
    size_t len = l->slot_size * SLAB_SLOTS;
    cio__slab *sl = malloc(sizeof(*sl));
    if (!sl)
        return -ENOMEM;
    void *base =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (base == MAP_FAILED) {
        free(sl);
        return -ENOMEM;
    }
    /* Huge pages would make every stack cost 2 MiB. */
    (void)madvise(base, len, MADV_NOHUGEPAGE);
    sl->base = base;
    sl->len = len;
    sl->next = l->slabs;
    l->slabs = sl;
    l->slab_next = base;
    l->slab_end = (char *)base + len;
    return 0;
}

static cio__stack *stack_carve(cio_loop *l)
{
    if (l->slab_next == l->slab_end) {
        if (slab_new(l) < 0)
            return NULL;
    }
    size_t ps = page_size();
    char *slot = l->slab_next;
    if (l->guard_madvise && madvise(slot, ps, MADV_GUARD_INSTALL) != 0)
        l->guard_madvise = false;
    if (!l->guard_madvise && mprotect(slot, ps, PROT_NONE) != 0)
        return NULL; /* out of mappings: vm.max_map_count */
    l->slab_next += l->slot_size;

    char *end = slot + l->slot_size;
    cio__stack *s = (cio__stack *)(void *)((uintptr_t)(end - sizeof(cio__stack)) & ~(uintptr_t)63);
    s->next = NULL;
    s->lo = slot + ps;
    s->size = (size_t)((char *)s - s->lo);
    s->dirty = false;
    s->vg_id = 0;
#ifdef CIO_HAVE_VALGRIND
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, (char *)s);
#endif
    l->stacks_mapped++;
    return s;
}

cio__stack *cio__stack_get(cio_loop *l)
{
    cio__stack *s = l->stack_free;
    if (s) {
        l->stack_free = s->next;
        l->stack_free_len--;
        s->next = NULL;
#if CIO_ASAN
        /* Frames of the previous coroutine may have left poisoned redzones. */
        ASAN_UNPOISON_MEMORY_REGION(s->lo, s->size);
#endif
        return s;
    }
    return stack_carve(l);
}

void cio__stack_put(cio_loop *l, cio__stack *s)
{
    s->dirty = true;
    s->next = l->stack_free;
    l->stack_free = s;
    l->stack_free_len++;
    if (l->stack_free_len > STACKS_WARM && !cio_timer_armed(&l->trim_timer))
        (void)cio_timer_start(&l->trim_timer, l->now + TRIM_PERIOD);
}

void cio__stacks_trim(cio_loop *l, size_t keep)
{
    /* At most TRIM_BATCH madvise calls a tick, so that trimming after a burst
     * of finished tasks is not itself a stall; the rest waits for the next. */
    size_t ps = page_size(), i = 0, done = 0;
    bool more = false;
    for (cio__stack *s = l->stack_free; s; s = s->next, i++) {
        if (i < keep || !s->dirty)
            continue;
        if (done == TRIM_BATCH) {
            more = true;
            break;
        }
        /* Keep the top page: it holds the descriptor. */
        char *top_page = (char *)((uintptr_t)s & ~(uintptr_t)(ps - 1));
        if (top_page > s->lo)
            (void)madvise(s->lo, (size_t)(top_page - s->lo), MADV_DONTNEED);
        s->dirty = false;
        done++;
    }
    if (more)
        (void)cio_timer_start(&l->trim_timer, l->now + TRIM_PERIOD);
}

#if defined(CIO_CORO_UCONTEXT)

/* Portable fallback: makecontext passes int arguments only. */
static void uc_entry(unsigned hi, unsigned lo)
{
    cio_task *t = (cio_task *)(((uintptr_t)hi << 32) | (uintptr_t)lo);
    cio__task_main(t);
}

void cio__ctx_make(cio_task *t)
{
    cio__stack *s = t->stack;
    getcontext(&t->ctx.uc);
    t->ctx.uc.uc_stack.ss_sp = s->lo;
    t->ctx.uc.uc_stack.ss_size = (size_t)(((uintptr_t)s & ~(uintptr_t)15) - (uintptr_t)s->lo);
    t->ctx.uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)t;
    makecontext(&t->ctx.uc, (void (*)(void))uc_entry, 2, (unsigned)(p >> 32), (unsigned)p);
}

#else

void cio__coro_start(void); /* switch_<arch>.S */

void cio__ctx_make(cio_task *t)
{
    uint64_t *top = (uint64_t *)(void *)((uintptr_t)t->stack & ~(uintptr_t)15);
    uint64_t *sp = top;
#if defined(__x86_64__)
    sp -= 2;                                      /* rsp after 'ret' is 16-byte aligned */
    *--sp = (uint64_t)(uintptr_t)cio__coro_start; /* return address */
    *--sp = 0;                                    /* rbp */
    *--sp = 0;                                    /* rbx */
    *--sp = (uint64_t)(uintptr_t)t;               /* r12: argument */
    *--sp = (uint64_t)(uintptr_t)cio__task_main;  /* r13: entry */
    *--sp = 0;                                    /* r14 */
    *--sp = 0;                                    /* r15 */
    *--sp = 0x1F80 | (0x037FULL << 32);           /* default MXCSR | x87 control word */
#elif defined(__aarch64__)
    sp -= 20; /* 160-byte frame: x19..x30, d8..d15 */
    memset(sp, 0, 160);
    sp[0] = (uint64_t)(uintptr_t)t;                /* x19 */
    sp[1] = (uint64_t)(uintptr_t)cio__task_main;   /* x20 */
    sp[11] = (uint64_t)(uintptr_t)cio__coro_start; /* x30 */
#else
#error "no hand-written switch for this architecture: configure with CIO_CORO_BACKEND=ucontext"
#endif
    t->ctx.sp = sp;
}

#endif

#if CIO_ASAN
void cio__ctx_switch(cio_loop *l, cio__ctx *from, cio__ctx *to, cio_task *from_task,
                     cio_task *to_task, bool exiting)
{
    static _Thread_local void *sched_fake;
    void **save = exiting ? NULL : (from_task ? &from_task->asan_fake : &sched_fake);
    if (to_task)
        __sanitizer_start_switch_fiber(save, to_task->stack->lo, to_task->stack->size);
    else
        __sanitizer_start_switch_fiber(save, l->main_stack_bottom, l->main_stack_size);
    cio__raw_switch(from, to);
    /* Back in 'from'. Only the scheduler switches to a task, so a task that
     * resumes learns the scheduler's stack bounds here. */
    if (from_task)
        __sanitizer_finish_switch_fiber(from_task->asan_fake, &l->main_stack_bottom,
                                        &l->main_stack_size);
    else
        __sanitizer_finish_switch_fiber(sched_fake, NULL, NULL);
}
#endif
