/* AVX-512 pieces shared by the float32 kernels (kernels.c) and the bf16 GEMM (gemm_bf16.c):
   the vectorised exp and sigmoid, and the GEMM epilogue applied to a micro-kernel's
   accumulators. Internal to CKernels; x86-64 only. */
#ifndef EFF_KERNELS_AVX512_H
#define EFF_KERNELS_AVX512_H

#include "eff_kernels.h"
#include <immintrin.h>

#define EFF_AVX512 __attribute__((target("avx512f,avx512vl,avx2,fma")))

#ifndef EFF_UNROLL
#define EFF_UNROLL _Pragma("clang loop unroll(full)")
#endif

/* exp on 16 lanes: the polynomial of kernels.c's eff_expf / exp_avx2, 2^n applied with scalef. */
static inline EFF_AVX512 __m512 exp_avx512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    x = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), x);
    __m512 z = _mm512_mul_ps(x, x);
    __m512 y = _mm512_set1_ps(1.9875691500e-4f);
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.3981999507e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(8.3334519073e-3f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(4.1665795894e-2f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(1.6666665459e-1f));
    y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(5.0000001201e-1f));
    y = _mm512_add_ps(_mm512_fmadd_ps(y, z, x), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

/* 1 / (1 + exp(-v)), the 14-bit reciprocal estimate refined by one Newton step. */
static inline EFF_AVX512 __m512 sigmoid_avx512(__m512 v) {
    __m512 d = _mm512_add_ps(_mm512_set1_ps(1.0f), exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), v)));
    __m512 g = _mm512_rcp14_ps(d);
    return _mm512_mul_ps(g, _mm512_fnmadd_ps(d, g, _mm512_set1_ps(2.0f)));
}

/* Bias, activation and residual on the accumulators, then one store each (24 independent exp
   chains keep the vector units busy); returns 1. Bias and residual columns past `cols` (a
   partial block, stored to the scratch tile) are not read. */
#define EFF_FINISH_LOOP_512(MR, NV, ACTIVATE)                                                                  \
    EFF_UNROLL for (int i = 0; i < MR; i++)                                                                    \
        EFF_UNROLL for (int j = 0; j < NV; j++) {                                                              \
            __m512 v = _mm512_add_ps((__m512)acc[i][j], bias_v[j]);                                            \
            v = ACTIVATE;                                                                                      \
            if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask[j], residual + i * ldr + j * 16));   \
            _mm512_storeu_ps(c + i * ldc + j * 16, v);                                                         \
        }
#define EFF_FINISH_BLOCK_512(MR, NV)                                                                           \
    __mmask16 mask[NV];                                                                                        \
    __m512 bias_v[NV];                                                                                         \
    EFF_UNROLL for (int j = 0; j < NV; j++) {                                                                  \
        long left = cols - j * 16;                                                                             \
        mask[j] = left >= 16 ? (__mmask16)0xFFFF : left > 0 ? (__mmask16)((1u << left) - 1) : (__mmask16)0;    \
        bias_v[j] = bias ? _mm512_maskz_loadu_ps(mask[j], bias + j * 16) : _mm512_setzero_ps();                \
    }                                                                                                          \
    switch (activation) {                                                                                      \
    case EFF_ACT_SILU: EFF_FINISH_LOOP_512(MR, NV, _mm512_mul_ps(v, sigmoid_avx512(v))) break;                 \
    case EFF_ACT_SIGMOID: EFF_FINISH_LOOP_512(MR, NV, sigmoid_avx512(v)) break;                                \
    case EFF_ACT_RELU: EFF_FINISH_LOOP_512(MR, NV, _mm512_max_ps(v, _mm512_setzero_ps())) break;               \
    case EFF_ACT_RELU6:                                                                                        \
        EFF_FINISH_LOOP_512(MR, NV, _mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(6.0f))) break; \
    default: EFF_FINISH_LOOP_512(MR, NV, v) break;                                                             \
    }                                                                                                          \
    return 1;
#endif
