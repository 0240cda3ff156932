/* Internal invariants. RT_ASSERT is always on; RT_DASSERT only without NDEBUG.
 * Never use either for peer input. */
#ifndef RT_BASE_ASSERT_H
#define RT_BASE_ASSERT_H

void rt_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));

#define RT_ASSERT(x)                                                                               \
    do {                                                                                           \
        if (!(x))                                                                                  \
            rt_assert_fail(#x, __FILE__, __LINE__);                                                \
    } while (0)

#ifdef NDEBUG
#define RT_DASSERT(x) ((void)0)
#else
#define RT_DASSERT(x) RT_ASSERT(x)
#endif

#endif
