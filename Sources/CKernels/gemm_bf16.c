/* GEMM in bfloat16 with float32 accumulation (AVX512_BF16's VDPBF16PS), the epilogue fused as in
   the float32 GEMM (kernels.c).

   C[m x n] = bf16(A)[m x k] * bf16(B)[k x n] + epilogue, every product of two bf16 values
   (rounded to nearest even from float32) summed in float32. B comes packed once from the
   float32 panels (eff_gemm_pack_bf16): panels of 16 columns, each [k/2][16] 32-bit lanes
   holding the bf16 pair (row 2p in the low half, row 2p+1 in the high half), a last odd row
   paired with zero. A is rounded to bf16 at the start of each call, row by row (a row of bf16
   values read as 32-bit lanes is already its sequence of pairs); the micro-kernel broadcasts a
   pair of A and multiplies it into 12 rows x 32 columns of accumulators, two k steps per
   instruction. */
#include "eff_kernels.h"
#include "small_input.h"

#include <stdlib.h>
#include <string.h>

/* float32 → bfloat16, rounded to nearest even (NaN kept a quiet NaN). */
static inline uint16_t bf16_from_float(float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7FFFu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

static inline float float_from_bf16(uint16_t value) {
    uint32_t bits = (uint32_t)value << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

long eff_gemm_packed_bf16_size(long k, long n) { return (k + 1) / 2 * ((n + 31) / 32 * 32); }

#if defined(__x86_64__)
#include "kernels_avx512.h"

/* Rounds 16 floats to bf16 (nearest even) in the low halves of 32-bit lanes, as integers. */
static inline EFF_AVX512 __m512i bf16_lanes(__m512 values) {
    __m512i bits = _mm512_castps_si512(values);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    return _mm512_srli_epi32(_mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), odd)), 16);
}

/* eff_gemm_pack_bf16 16 lanes at a time (a squeeze-and-excitation gate rescales a projection's
   weights on every call, so they are rounded again each time). */
static EFF_AVX512 void pack_bf16_avx512(const float *packed, long k, long n, uint32_t *out) {
    long panels = (n + 31) / 32 * 2, pairs = (k + 1) / 2;
    for (long q = 0; q < panels; q++) {
        const float *src = packed + q * k * 16;
        uint32_t *dst = out + q * pairs * 16;
        for (long p = 0; p < pairs; p++) {
            __m512i low = bf16_lanes(_mm512_loadu_ps(src + 2 * p * 16));
            __m512i high = 2 * p + 1 < k ? bf16_lanes(_mm512_loadu_ps(src + (2 * p + 1) * 16)) : _mm512_setzero_si512();
            _mm512_storeu_si512(dst + p * 16, _mm512_or_si512(low, _mm512_slli_epi32(high, 16)));
        }
    }
}
#endif

void eff_gemm_pack_bf16(const float *packed, long k, long n, uint32_t *out) {
#if defined(__x86_64__)
    if (eff_kernels_use_avx512()) { pack_bf16_avx512(packed, k, n, out); return; }
#endif
    long panels = (n + 31) / 32 * 2, pairs = (k + 1) / 2;
    for (long q = 0; q < panels; q++) {
        const float *src = packed + q * k * 16;
        uint32_t *dst = out + q * pairs * 16;
        for (long p = 0; p < pairs; p++) {
            for (long j = 0; j < 16; j++) {
                uint32_t low = bf16_from_float(src[2 * p * 16 + j]);
                uint32_t high = 2 * p + 1 < k ? bf16_from_float(src[(2 * p + 1) * 16 + j]) : 0;
                dst[p * 16 + j] = low | (high << 16);
            }
        }
    }
}

/* Without AVX512_BF16: the same numbers (products of bf16-rounded values, float32 sums), one
   multiply at a time, then the epilogue. For tests and other CPUs; the Swift side runs float32
   there instead. */
void eff_gemm_packed_bf16_portable(const float *a, long lda, long m, long k, const uint32_t *packed, long n, float *c,
                                   long ldc, const float *bias, int activation, const float *residual, long ldr) {
    long pairs = (k + 1) / 2;
    for (long i = 0; i < m; i++) {
        for (long j = 0; j < n; j++) {
            const uint32_t *panel = packed + (j / 16) * pairs * 16;
            float sum = 0;
            for (long p = 0; p < pairs; p++) {
                uint32_t b = panel[p * 16 + j % 16];
                sum += float_from_bf16(bf16_from_float(a[i * lda + 2 * p])) * float_from_bf16((uint16_t)(b & 0xFFFF));
                if (2 * p + 1 < k) sum += float_from_bf16(bf16_from_float(a[i * lda + 2 * p + 1])) * float_from_bf16((uint16_t)(b >> 16));
            }
            c[i * ldc + j] = sum;
        }
        eff_epilogue(c + i * ldc, 1, n, bias, activation, residual ? residual + i * ldr : 0);
    }
}

#if defined(__x86_64__)
#define EFF_AVX512_BF16 __attribute__((target("avx512f,avx512vl,avx512bw,avx512bf16,avx2,fma")))

int eff_kernels_use_avx512_bf16(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = eff_kernels_use_avx512() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
    }
    return cached;
}

/* count floats rounded to bf16 (nearest even, as VCVTNEPS2BF16 does). */
static EFF_AVX512_BF16 void round_values(const float *src, long count, uint16_t *dst) {
    long p = 0;
    for (; p + 32 <= count; p += 32) {
        __m512bh pair = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + p + 16), _mm512_loadu_ps(src + p));
        _mm512_storeu_si512(dst + p, (__m512i)pair);
    }
    for (; p < count; p += 16) {
        __mmask16 mask = count - p >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - p)) - 1);
        __m256bh half = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + p));
        _mm256_mask_storeu_epi16(dst + p, mask, (__m256i)half);
    }
}

/* Rows of A rounded to bf16, `width` (k rounded up to even, the pad zero) apart. */
static EFF_AVX512_BF16 void round_rows(const float *a, long lda, long m, long k, uint16_t *out, long width) {
    for (long i = 0; i < m; i++) {
        round_values(a + i * lda, k, out + i * width);
        if (k % 2) out[i * width + k] = 0;
    }
}

/* acc[MR][NV] = pairs of A rows (a, lda pairs apart) x NV panels of b (panel_stride apart),
   then the float32 GEMM's fused epilogue and store. */
#define EFF_GEMM_MICRO_BF16(NAME, MR, NV)                                                                      \
    static inline EFF_AVX512_BF16 __attribute__((always_inline)) int NAME(                                     \
        const uint32_t *restrict a, long lda, long pairs, const uint32_t *restrict b, long panel_stride,       \
        float *restrict c, long ldc, const float *bias, int activation, const float *residual, long ldr, long cols, \
        const uint32_t *next) {                                                                                \
        __m512 acc[MR][NV];                                                                                    \
        EFF_UNROLL for (int i = 0; i < MR; i++)                                                                \
            EFF_UNROLL for (int j = 0; j < NV; j++) acc[i][j] = _mm512_setzero_ps();                           \
        for (long p = 0; p < pairs; p++) {                                                                     \
            __m512i bv[NV];                                                                                    \
            if (next) EFF_UNROLL for (int j = 0; j < 2; j++) __builtin_prefetch(next + j * panel_stride + p * 16, 0, 3); \
            EFF_UNROLL for (int j = 0; j < NV; j++) bv[j] = _mm512_loadu_si512(b + j * panel_stride + p * 16); \
            EFF_UNROLL for (int i = 0; i < MR; i++) {                                                          \
                __m512i av = _mm512_set1_epi32((int)a[i * lda + p]);                                           \
                EFF_UNROLL for (int j = 0; j < NV; j++)                                                        \
                    acc[i][j] = _mm512_dpbf16_ps(acc[i][j], (__m512bh)av, (__m512bh)bv[j]);                    \
            }                                                                                                  \
        }                                                                                                      \
        EFF_FINISH_BLOCK_512(MR, NV)                                                                           \
    }

EFF_GEMM_MICRO_BF16(bf16_12x2, 12, 2)
EFF_GEMM_MICRO_BF16(bf16_4x2, 4, 2)
EFF_GEMM_MICRO_BF16(bf16_1x2, 1, 2)
EFF_GEMM_MICRO_BF16(bf16_12x1, 12, 1)
EFF_GEMM_MICRO_BF16(bf16_4x1, 4, 1)
EFF_GEMM_MICRO_BF16(bf16_1x1, 1, 1)

/* C = rows of A already rounded (`pairs` 32-bit pairs per row) x the packed panels, with the
   epilogue. */
static EFF_AVX512_BF16 void gemm_bf16_rounded_avx512(const uint32_t *rows32, long m, long pairs, const uint32_t *packed,
                                                     long n, float *c, long ldc, const float *bias, int activation,
                                                     const float *residual, long ldr, long prefetch_after) {
    float scratch[12 * 32];
    for (long j0 = 0; j0 < n; j0 += 32) {
        const uint32_t *b = packed + (j0 / 16) * pairs * 16;
        long cols = n - j0 < 32 ? n - j0 : 32;
        int narrow = cols <= 16, full = cols == 32 || cols == 16;
        const float *block_bias = bias ? bias + j0 : 0;
        for (long i0 = 0; i0 < m;) {
            long rows = m - i0 >= 12 ? 12 : (m - i0 >= 4 ? 4 : 1);
            float *target = full ? c + i0 * ldc + j0 : scratch;
            long ld = full ? ldc : 32;
            const float *block_residual = residual ? residual + i0 * ldr + j0 : 0;
            const uint32_t *ai = rows32 + i0 * pairs;
            /* The first row block also fetches the next column block's weights (past n when the
               caller's next call reads them): they come from memory (a pass reads each layer's
               once), and with few rows nothing hides the wait. */
            const uint32_t *next = i0 == 0 && j0 + 32 < n + prefetch_after ? packed + ((j0 + 32) / 16) * pairs * 16 : 0;
            if (narrow) {
                if (rows == 12) bf16_12x1(ai, pairs, pairs, b, pairs * 16, target, ld, block_bias, activation, block_residual, ldr, cols, next);
                else if (rows == 4) bf16_4x1(ai, pairs, pairs, b, pairs * 16, target, ld, block_bias, activation, block_residual, ldr, cols, next);
                else bf16_1x1(ai, pairs, pairs, b, pairs * 16, target, ld, block_bias, activation, block_residual, ldr, cols, next);
            } else {
                if (rows == 12) bf16_12x2(ai, pairs, pairs, b, pairs * 16, target, ld, block_bias, activation, block_residual, ldr, cols, next);
                else if (rows == 4) bf16_4x2(ai, pairs, pairs, b, pairs * 16, target, ld, block_bias, activation, block_residual, ldr, cols, next);
                else bf16_1x2(ai, pairs, pairs, b, pairs * 16, target, ld, block_bias, activation, block_residual, ldr, cols, next);
            }
            if (!full) {
                for (long i = 0; i < rows; i++) memcpy(c + (i0 + i) * ldc + j0, scratch + i * 32, cols * sizeof(float));
            }
            i0 += rows;
        }
    }
}

/* The rounded rows of A, per thread, grown as needed and kept. */
static _Thread_local uint16_t *rounded_rows;
static _Thread_local long rounded_capacity;

static EFF_AVX512_BF16 int gemm_bf16_avx512(const float *a, long lda, long m, long k, const uint32_t *packed, long n, float *c,
                                            long ldc, const float *bias, int activation, const float *residual, long ldr) {
    long pairs = (k + 1) / 2, width = 2 * pairs;
    if (m * width > rounded_capacity) {
        uint16_t *grown = realloc(rounded_rows, (size_t)(m * width) * sizeof(uint16_t) + 64);
        if (!grown) return 0;
        rounded_rows = grown;
        rounded_capacity = m * width;
    }
    round_rows(a, lda, m, k, rounded_rows, width);
    gemm_bf16_rounded_avx512((const uint32_t *)rounded_rows, m, pairs, packed, n, c, ldc, bias, activation, residual, ldr, 0);
    return 1;
}

/* The bf16 version of kernels.c's small_input_block on a zero-padded band: 12 output pixels x 32
   output channels of a direct convolution with few input channels, the window's taps taken in
   pairs as the bf16 GEMM takes the k * k * cin rows of im2col (so the numbers are the GEMM's),
   then the epilogue. `b` is the layer's eff_gemm_pack_bf16 panels; `row` and `column` give each
   tap's place in the window (tap t = (ky * k + kx) * cin + ch: row ky, value kx * cin + ch). */
static inline EFF_AVX512_BF16 __attribute__((always_inline)) int small_input_block_bf16(
    const uint16_t *restrict corner, long row_values, const long cin, const long depth, const long stride,
    const long *row, const long *column, const uint32_t *restrict b, long panel_stride, float *restrict c, long ldc,
    const float *bias, int activation, long cols) {
    const float *residual = 0; /* for EFF_FINISH_BLOCK_512: a stem has no residual */
    const long ldr = 0;
    __m512 acc[12][2];
    EFF_UNROLL for (int i = 0; i < 12; i++) { acc[i][0] = _mm512_setzero_ps(); acc[i][1] = _mm512_setzero_ps(); }
    const long pairs = (depth + 1) / 2;
    for (long p = 0; p < pairs; p++) {
        const long t0 = 2 * p, t1 = 2 * p + 1;
        __m512i b0 = _mm512_loadu_si512(b + p * 16), b1 = _mm512_loadu_si512(b + panel_stride + p * 16);
        const uint16_t *first = corner + row[t0] * row_values + column[t0];
        if (t1 < depth && row[t0] == row[t1]) {
            /* Both taps in one input row: one 32-bit load holds the pair. */
            EFF_UNROLL for (int i = 0; i < 12; i++) {
                __m512i av = _mm512_broadcastd_epi32(_mm_loadu_si32(first + i * stride * cin));
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], (__m512bh)av, (__m512bh)b0);
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], (__m512bh)av, (__m512bh)b1);
            }
        } else {
            /* The pair spans two input rows (or its second tap is past the window's last). */
            const uint16_t *second = t1 < depth ? corner + row[t1] * row_values + column[t1] : 0;
            EFF_UNROLL for (int i = 0; i < 12; i++) {
                uint32_t pair = first[i * stride * cin] | (second ? (uint32_t)second[i * stride * cin] << 16 : 0);
                __m512i av = _mm512_set1_epi32((int)pair);
                acc[i][0] = _mm512_dpbf16_ps(acc[i][0], (__m512bh)av, (__m512bh)b0);
                acc[i][1] = _mm512_dpbf16_ps(acc[i][1], (__m512bh)av, (__m512bh)b1);
            }
        }
    }
    EFF_FINISH_BLOCK_512(12, 2)
}

static EFF_AVX512_BF16 void round_floats(const float *src, long count, void *dst) { round_values(src, count, dst); }

/* eff_conv_small_input_bf16's layer, for its blocks: the panels and where each tap lies. */
typedef struct {
    const uint32_t *panels;
    const float *bias;
    long cin, stride, depth, pairs;
    int activation;
    long tap_row[2 * EFF_SMALL_INPUT_MAX_PAIRS], tap_column[2 * EFF_SMALL_INPUT_MAX_PAIRS];
} small_input_layer_bf16;

static EFF_AVX512_BF16 void small_input_block_pairs(const void *corner, long width, long j0, float *target, long ld, long cols,
                                                    const void *layer) {
    const small_input_layer_bf16 *l = layer;
    /* A last block of 16 columns reads its (zero) neighbour panel: the panels pad n to 32. */
    const uint32_t *b0 = l->panels + (j0 / 16) * l->pairs * 16;
    const float *bias = l->bias ? l->bias + j0 : 0;
    if (l->cin == 3 && l->depth == 27 && l->stride == 2) /* every EfficientNet's stem: constant offsets */
        small_input_block_bf16(corner, width * 3, 3, 27, 2, l->tap_row, l->tap_column, b0, l->pairs * 16, target, ld, bias,
                               l->activation, cols);
    else
        small_input_block_bf16(corner, width * l->cin, l->cin, l->depth, l->stride, l->tap_row, l->tap_column, b0,
                               l->pairs * 16, target, ld, bias, l->activation, cols);
}
#else
int eff_kernels_use_avx512_bf16(void) { return 0; }
#endif

int eff_conv_small_input_bf16(const float *input, long h, long w, long cin, long k, long stride, long pad_top,
                              long pad_left, long oh, long ow, const uint32_t *panels, long n_out, float *out,
                              long row_begin, long row_end, const float *bias, int activation) {
#if defined(__x86_64__)
    long depth = k * k * cin;
    if (!eff_kernels_use_avx512_bf16() || depth > 2 * EFF_SMALL_INPUT_MAX_PAIRS) return 0;
    small_input_layer_bf16 layer = {panels, bias, cin, stride, depth, (depth + 1) / 2, activation, {0}, {0}};
    for (long t = 0; t < depth; t++) {
        layer.tap_row[t] = t / (k * cin);
        layer.tap_column[t] = t % (k * cin);
    }
    return eff_small_input_rows(input, h, w, cin, k, stride, pad_top, pad_left, oh, ow, n_out, out, row_begin, row_end,
                                sizeof(uint16_t), round_floats, small_input_block_pairs, &layer);
#else
    return 0;
#endif
}

void eff_gemm_packed_bf16(const float *a, long lda, long m, long k, const uint32_t *packed, long n, float *c, long ldc,
                          const float *bias, int activation, const float *residual, long ldr) {
#if defined(__x86_64__)
    if (eff_kernels_use_avx512_bf16() && gemm_bf16_avx512(a, lda, m, k, packed, n, c, ldc, bias, activation, residual, ldr)) return;
#endif
    eff_gemm_packed_bf16_portable(a, lda, m, k, packed, n, c, ldc, bias, activation, residual, ldr);
}

long eff_bf16_row_width(long k) { return 2 * ((k + 1) / 2); }

void eff_bf16_round_rows(const float *a, long lda, long m, long k, uint16_t *out) {
    long width = eff_bf16_row_width(k);
#if defined(__x86_64__)
    if (eff_kernels_use_avx512_bf16()) { round_rows(a, lda, m, k, out, width); return; }
#endif
    for (long i = 0; i < m; i++) {
        for (long p = 0; p < k; p++) out[i * width + p] = bf16_from_float(a[i * lda + p]);
        if (k % 2) out[i * width + k] = 0;
    }
}

void eff_gemm_rounded_bf16(const uint16_t *a, long m, long k, const uint32_t *packed, long n, float *c, long ldc,
                           const float *bias, int activation, const float *residual, long ldr, long prefetch_after) {
    long pairs = (k + 1) / 2;
#if defined(__x86_64__)
    if (eff_kernels_use_avx512_bf16()) {
        gemm_bf16_rounded_avx512((const uint32_t *)a, m, pairs, packed, n, c, ldc, bias, activation, residual, ldr,
                                 prefetch_after);
        return;
    }
#endif
    /* The rounded values back as float32: the portable GEMM rounds them again to the same values. */
    long width = 2 * pairs;
    float *row = malloc((size_t)width * sizeof(float));
    if (!row) return;
    for (long i = 0; i < m; i++) {
        for (long p = 0; p < width; p++) row[p] = float_from_bf16(a[i * width + p]);
        eff_gemm_packed_bf16_portable(row, width, 1, k, packed, n, c + i * ldc, ldc, bias, activation,
                                      residual ? residual + i * ldr : 0, ldr);
    }
    free(row);
}
