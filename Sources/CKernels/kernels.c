#define _GNU_SOURCE
#include "eff_kernels.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "small_input.h"
#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* exp for the activations: Cephes' single-precision polynomial (about 1 ulp), written without
   calls or branches so that it vectorises. */
static inline __attribute__((always_inline)) float eff_expf(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    float fx = x * 1.44269504088896341f;
    float n = (float)(int)(fx + (fx >= 0 ? 0.5f : -0.5f)); /* round to nearest */
    x = x - n * 0.693359375f + n * 2.12194440e-4f;
    float z = x * x;
    float y = ((((1.9875691500e-4f * x + 1.3981999507e-3f) * x + 8.3334519073e-3f) * x + 4.1665795894e-2f) * x +
               1.6666665459e-1f) * x + 5.0000001201e-1f;
    y = y * z + x + 1.0f;
    union { int i; float f; } pow2n;
    pow2n.i = ((int)n + 127) << 23;
    return y * pow2n.f;
}

static inline __attribute__((always_inline)) float eff_activate(float v, int activation) {
    switch (activation) {
    case EFF_ACT_RELU: return v > 0 ? v : 0;
    case EFF_ACT_RELU6: return v < 0 ? 0 : (v > 6 ? 6 : v);
    case EFF_ACT_SILU: return v / (1.0f + eff_expf(-v));
    case EFF_ACT_SIGMOID: return 1.0f / (1.0f + eff_expf(-v));
    default: return v;
    }
}

static inline __attribute__((always_inline)) void epilogue_row(float *restrict row, long channels, const float *restrict bias,
                                                                int activation, const float *restrict residual) {
    if (bias) for (long c = 0; c < channels; c++) row[c] += bias[c];
    switch (activation) {
    case EFF_ACT_RELU: for (long c = 0; c < channels; c++) row[c] = eff_activate(row[c], EFF_ACT_RELU); break;
    case EFF_ACT_RELU6: for (long c = 0; c < channels; c++) row[c] = eff_activate(row[c], EFF_ACT_RELU6); break;
    case EFF_ACT_SILU: for (long c = 0; c < channels; c++) row[c] = eff_activate(row[c], EFF_ACT_SILU); break;
    case EFF_ACT_SIGMOID: for (long c = 0; c < channels; c++) row[c] = eff_activate(row[c], EFF_ACT_SIGMOID); break;
    default: break;
    }
    if (residual) for (long c = 0; c < channels; c++) row[c] += residual[c];
}

static inline __attribute__((always_inline)) void epilogue_body(float *out, long rows, long channels, const float *bias,
                                                                 int activation, const float *residual) {
    for (long r = 0; r < rows; r++) {
        epilogue_row(out + r * channels, channels, bias, activation, residual ? residual + r * channels : 0);
    }
}

static inline __attribute__((always_inline)) void depthwise_body(
    const float *restrict input, long h, long w, long c, const float *restrict weight, long k, long stride, long dilation,
    long pad_top, long pad_left, long oh, long ow, float *restrict out, long row_begin, long row_end, long c_begin,
    long c_end, const float *restrict bias, int activation, const float *restrict residual) {
    for (long row = row_begin; row < row_end; row++) {
        long b = row / oh, oy = row % oh;
        float *restrict out_row = out + row * ow * c;
        for (long ox = 0; ox < ow; ox++) memset(out_row + ox * c + c_begin, 0, sizeof(float) * (c_end - c_begin));
        for (long ky = 0; ky < k; ky++) {
            long iy = oy * stride - pad_top + ky * dilation;
            if (iy < 0 || iy >= h) continue;
            const float *restrict in_row = input + (b * h + iy) * w * c;
            for (long kx = 0; kx < k; kx++) {
                const float *restrict filter = weight + (ky * k + kx) * c;
                long offset = kx * dilation - pad_left;
                long first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
                long last = (w - 1 - offset) >= 0 ? (w - 1 - offset) / stride : -1;
                if (last > ow - 1) last = ow - 1;
                for (long ox = first; ox <= last; ox++) {
                    float *restrict acc = out_row + ox * c;
                    const float *restrict x = in_row + (ox * stride + offset) * c;
                    for (long ch = c_begin; ch < c_end; ch++) acc[ch] += x[ch] * filter[ch];
                }
            }
        }
        for (long ox = 0; ox < ow; ox++) {
            long at = ox * c + c_begin;
            epilogue_row(out_row + at, c_end - c_begin, bias ? bias + c_begin : 0, activation,
                         residual ? residual + row * ow * c + at : 0);
        }
    }
}

static inline __attribute__((always_inline)) void weighted_sum_body(float *restrict out, const float *const *inputs,
                                                                     const float *weights, long terms, long count) {
    for (long i = 0; i < count; i++) out[i] = 0;
    for (long t = 0; t < terms; t++) {
        const float *restrict x = inputs[t];
        float wt = weights[t];
        for (long i = 0; i < count; i++) out[i] += wt * x[i];
    }
}

/* Max or average pooling of output rows [row_begin, row_end) (row = image * oh + y), NHWC:
   each output pixel accumulates its window's pixels over all channels at once. The average
   divides by the window's size within the padded input (count_include_pad) or by its real
   pixels. Windows are clipped to the padded input as PyTorch does. */
static inline __attribute__((always_inline)) void pool_body(
    const float *restrict input, long h, long w, long c, long k, long stride, long pad_top, long pad_left,
    long pad_bottom, long pad_right, long oh, long ow, float *restrict out, long row_begin, long row_end, int is_max,
    int count_include_pad) {
    for (long row = row_begin; row < row_end; row++) {
        long b = row / oh, oy = row % oh;
        long y0 = oy * stride - pad_top, y_end = y0 + k < h + pad_bottom ? y0 + k : h + pad_bottom;
        long ya = y0 > 0 ? y0 : 0, yb = y_end < h ? y_end : h;
        const float *image = input + b * h * w * c;
        for (long ox = 0; ox < ow; ox++) {
            long x0 = ox * stride - pad_left, x_end = x0 + k < w + pad_right ? x0 + k : w + pad_right;
            long xa = x0 > 0 ? x0 : 0, xb = x_end < w ? x_end : w;
            float *restrict o = out + (row * ow + ox) * c;
            for (long ch = 0; ch < c; ch++) o[ch] = is_max ? -__builtin_inff() : 0.0f;
            for (long y = ya; y < yb; y++) {
                for (long x = xa; x < xb; x++) {
                    const float *restrict px = image + (y * w + x) * c;
                    if (is_max) {
                        for (long ch = 0; ch < c; ch++) o[ch] = px[ch] >= o[ch] ? px[ch] : o[ch];
                    } else {
                        for (long ch = 0; ch < c; ch++) o[ch] += px[ch];
                    }
                }
            }
            if (!is_max) {
                long count = count_include_pad ? (y_end - y0) * (x_end - x0) : (yb - ya) * (xb - xa);
                float divisor = (float)count;
                for (long ch = 0; ch < c; ch++) o[ch] /= divisor;
            }
        }
    }
}

#if defined(__x86_64__)
#define EFF_AVX2 __attribute__((target("avx2,fma")))
/* eff_expf on 8 lanes (the same Cephes polynomial; n rounded to nearest even instead of away
   from zero, which keeps the reduced argument within +-ln2/2 either way). */
static inline EFF_AVX2 __m256 exp_avx2(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_add_ps(_mm256_fmadd_ps(y, z, x), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

/* bias + SiLU / sigmoid (+ residual) on a row, 8 lanes at a time; other activations and the
   tail go through the plain loop, which the compiler vectorises itself. */
static inline EFF_AVX2 void epilogue_row_avx2(float *row, long channels, const float *bias, int activation,
                                              const float *residual) {
    if (activation != EFF_ACT_SILU && activation != EFF_ACT_SIGMOID) {
        epilogue_row(row, channels, bias, activation, residual);
        return;
    }
    long c = 0;
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; c + 8 <= channels; c += 8) {
        __m256 v = _mm256_loadu_ps(row + c);
        if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + c));
        // 1 / (1 + exp(-v)): the 12-bit reciprocal estimate refined by one Newton step (about
        // 23 bits; a division would take most of the epilogue's time).
        __m256 d = _mm256_add_ps(one, exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), v)));
        __m256 gate = _mm256_rcp_ps(d);
        gate = _mm256_mul_ps(gate, _mm256_fnmadd_ps(d, gate, _mm256_set1_ps(2.0f)));
        v = activation == EFF_ACT_SILU ? _mm256_mul_ps(v, gate) : gate;
        if (residual) v = _mm256_add_ps(v, _mm256_loadu_ps(residual + c));
        _mm256_storeu_ps(row + c, v);
    }
    if (c < channels) epilogue_row(row + c, channels - c, bias ? bias + c : 0, activation, residual ? residual + c : 0);
}

int eff_kernels_use_avx512(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = eff_kernels_use_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
    }
    return cached;
}

#include "kernels_avx512.h"

/* The epilogue on a row, 16 lanes at a time, then the tail with masked loads and stores (only
   there: masked stores are slow on some CPUs); one loop per activation. */
#define EFF_EPILOGUE_LOOP_512(ACTIVATE)                                                                        \
    {                                                                                                          \
        long c = 0;                                                                                            \
        for (; c + 16 <= channels; c += 16) {                                                                  \
            __m512 v = _mm512_loadu_ps(row + c);                                                               \
            if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + c));                                         \
            v = ACTIVATE;                                                                                      \
            if (residual) v = _mm512_add_ps(v, _mm512_loadu_ps(residual + c));                                 \
            _mm512_storeu_ps(row + c, v);                                                                      \
        }                                                                                                      \
        if (c < channels) {                                                                                    \
            __mmask16 m = (__mmask16)((1u << (channels - c)) - 1);                                             \
            __m512 v = _mm512_maskz_loadu_ps(m, row + c);                                                      \
            if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + c));                                \
            v = ACTIVATE;                                                                                      \
            if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, residual + c));                        \
            _mm512_mask_storeu_ps(row + c, m, v);                                                              \
        }                                                                                                      \
    }
static inline EFF_AVX512 void epilogue_row_avx512(float *row, long channels, const float *bias, int activation,
                                                  const float *residual) {
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
    switch (activation) {
    case EFF_ACT_SILU: EFF_EPILOGUE_LOOP_512(_mm512_mul_ps(v, sigmoid_avx512(v))) break;
    case EFF_ACT_SIGMOID: EFF_EPILOGUE_LOOP_512(sigmoid_avx512(v)) break;
    case EFF_ACT_RELU: EFF_EPILOGUE_LOOP_512(_mm512_max_ps(v, zero)) break;
    case EFF_ACT_RELU6: EFF_EPILOGUE_LOOP_512(_mm512_min_ps(_mm512_max_ps(v, zero), six)) break;
    default:
        if (bias || residual) { EFF_EPILOGUE_LOOP_512(v) }
        break;
    }
}

static EFF_AVX512 void epilogue_avx512(float *out, long rows, long channels, const float *bias, int activation,
                                       const float *residual) {
    for (long r = 0; r < rows; r++) {
        epilogue_row_avx512(out + r * channels, channels, bias, activation, residual ? residual + r * channels : 0);
    }
}

static EFF_AVX2 void epilogue_avx2(float *out, long rows, long channels, const float *bias, int activation, const float *residual) {
    if (eff_kernels_use_avx512()) {
        epilogue_avx512(out, rows, channels, bias, activation, residual);
        return;
    }
    for (long r = 0; r < rows; r++) {
        epilogue_row_avx2(out + r * channels, channels, bias, activation, residual ? residual + r * channels : 0);
    }
}
/* Depthwise convolution, register-blocked: 4 output columns x 8 channels accumulate in registers
   over all the taps, then are stored once (the plain version adds every tap into the output row
   in memory). Columns whose taps all fall inside the row take the unchecked path; the few at the
   edges check each tap. Needs c, c_begin and c_end multiples of 8 (every EfficientNet / BiFPN /
   ASPP width is). */
static EFF_AVX2 void depthwise_avx2_blocked(const float *restrict input, long h, long w, long c, const float *restrict weight,
                                            long k, long stride, long dilation, long pad_top, long pad_left, long oh, long ow,
                                            float *restrict out, long row_begin, long row_end, long c_begin, long c_end,
                                            const float *restrict bias, int activation, const float *restrict residual) {
    /* Columns ox whose every tap ox*stride - pad_left + kx*dilation is within [0, w). */
    long interior_begin = (pad_left + stride - 1) / stride;
    long reach = (k - 1) * dilation - pad_left; /* last tap's offset from ox*stride */
    long interior_end = w - 1 - reach >= 0 ? (w - 1 - reach) / stride + 1 : 0;
    if (interior_end > ow) interior_end = ow;
    if (interior_begin > interior_end) interior_begin = interior_end;
    const long step = stride * c;
    for (long row = row_begin; row < row_end; row++) {
        long b = row / oh, oy = row % oh;
        float *restrict out_row = out + row * ow * c;
        long ky_begin = 0, ky_end = k;
        while (ky_begin < k && oy * stride - pad_top + ky_begin * dilation < 0) ky_begin++;
        while (ky_end > ky_begin && oy * stride - pad_top + (ky_end - 1) * dilation >= h) ky_end--;
        const float *image = input + b * h * w * c;
        long ox = 0;
        while (ox < ow) {
            int interior = ox >= interior_begin && ox + 4 <= interior_end;
            long columns = interior ? 4 : 1;
            long ch = c_begin;
            if (interior) {
                /* 4 columns x 16 channels: 8 independent accumulator chains keep both FMA units busy. */
                for (; ch + 16 <= c_end; ch += 16) {
                    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
                    __m256 b0 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps(), b2 = _mm256_setzero_ps(), b3 = _mm256_setzero_ps();
                    for (long ky = ky_begin; ky < ky_end; ky++) {
                        const float *x = image + (oy * stride - pad_top + ky * dilation) * w * c + (ox * stride - pad_left) * c + ch;
                        const float *filter = weight + ky * k * c + ch;
                        for (long kx = 0; kx < k; kx++) {
                            __m256 wa = _mm256_loadu_ps(filter + kx * c), wb = _mm256_loadu_ps(filter + kx * c + 8);
                            const float *xk = x + kx * dilation * c;
                            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xk), wa, a0);
                            b0 = _mm256_fmadd_ps(_mm256_loadu_ps(xk + 8), wb, b0);
                            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xk + step), wa, a1);
                            b1 = _mm256_fmadd_ps(_mm256_loadu_ps(xk + step + 8), wb, b1);
                            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(xk + 2 * step), wa, a2);
                            b2 = _mm256_fmadd_ps(_mm256_loadu_ps(xk + 2 * step + 8), wb, b2);
                            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(xk + 3 * step), wa, a3);
                            b3 = _mm256_fmadd_ps(_mm256_loadu_ps(xk + 3 * step + 8), wb, b3);
                        }
                    }
                    float *dst = out_row + ox * c + ch;
                    _mm256_storeu_ps(dst, a0);
                    _mm256_storeu_ps(dst + 8, b0);
                    _mm256_storeu_ps(dst + c, a1);
                    _mm256_storeu_ps(dst + c + 8, b1);
                    _mm256_storeu_ps(dst + 2 * c, a2);
                    _mm256_storeu_ps(dst + 2 * c + 8, b2);
                    _mm256_storeu_ps(dst + 3 * c, a3);
                    _mm256_storeu_ps(dst + 3 * c + 8, b3);
                }
            }
            if (!interior) {
                /* An edge column: taps checked one by one, 32 channels (4 chains) at a time. */
                for (; ch + 32 <= c_end; ch += 32) {
                    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
                    for (long ky = ky_begin; ky < ky_end; ky++) {
                        const float *in_row = image + (oy * stride - pad_top + ky * dilation) * w * c + ch;
                        const float *filter = weight + ky * k * c + ch;
                        for (long kx = 0; kx < k; kx++) {
                            long ix = ox * stride - pad_left + kx * dilation;
                            if (ix < 0 || ix >= w) continue;
                            const float *x = in_row + ix * c, *f = filter + kx * c;
                            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x), _mm256_loadu_ps(f), a0);
                            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8), _mm256_loadu_ps(f + 8), a1);
                            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 16), _mm256_loadu_ps(f + 16), a2);
                            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + 24), _mm256_loadu_ps(f + 24), a3);
                        }
                    }
                    float *dst = out_row + ox * c + ch;
                    _mm256_storeu_ps(dst, a0);
                    _mm256_storeu_ps(dst + 8, a1);
                    _mm256_storeu_ps(dst + 16, a2);
                    _mm256_storeu_ps(dst + 24, a3);
                }
            }
            for (; ch < c_end; ch += 8) {
                __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps(), acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
                for (long ky = ky_begin; ky < ky_end; ky++) {
                    const float *in_row = image + (oy * stride - pad_top + ky * dilation) * w * c;
                    const float *filter = weight + ky * k * c + ch;
                    if (interior) {
                        const float *x = in_row + (ox * stride - pad_left) * c + ch;
                        for (long kx = 0; kx < k; kx++) {
                            __m256 wv = _mm256_loadu_ps(filter + kx * c);
                            const float *xk = x + kx * dilation * c;
                            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(xk), wv, acc0);
                            acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(xk + step), wv, acc1);
                            acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(xk + 2 * step), wv, acc2);
                            acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(xk + 3 * step), wv, acc3);
                        }
                    } else {
                        for (long kx = 0; kx < k; kx++) {
                            long ix = ox * stride - pad_left + kx * dilation;
                            if (ix < 0 || ix >= w) continue;
                            acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(in_row + ix * c + ch), _mm256_loadu_ps(filter + kx * c), acc0);
                        }
                    }
                }
                float *dst = out_row + ox * c + ch;
                _mm256_storeu_ps(dst, acc0);
                if (interior) {
                    _mm256_storeu_ps(dst + c, acc1);
                    _mm256_storeu_ps(dst + 2 * c, acc2);
                    _mm256_storeu_ps(dst + 3 * c, acc3);
                }
            }
            ox += columns;
        }
        if (c_begin == 0 && c_end == c) {
            epilogue_avx2(out_row, ow, c, bias, activation, residual ? residual + row * ow * c : 0);
        } else {
            for (long px = 0; px < ow; px++) {
                long at = px * c + c_begin;
                epilogue_avx2(out_row + at, 1, c_end - c_begin, bias ? bias + c_begin : 0, activation,
                              residual ? residual + row * ow * c + at : 0);
            }
        }
    }
}

/* Depthwise convolution on AVX-512: blocks of 8 output columns x 16 channels accumulate over all
   the taps in registers, then bias, activation and residual are applied there and the block is
   stored once. With dilation 1 or 2 (and stride 1 or 2, kernels 3 and 5: constants known to the
   compiler) each input column is loaded once per kernel row and added into every output column
   of the block it reaches; other dilations load per tap. Input columns over the padding read as
   zero through an empty load mask (only blocks at a row's ends check); adding 0 * w leaves a sum
   as it is. Any channel count: the last 16 are masked. The sums run in the same order as
   depthwise_body (kernel row, then kernel column). */
#define EFF_DW_COLS 8
/* Bias, activation and residual on the block's accumulators, then one store each. */
#define EFF_DW_FINISH(ACTIVATE)                                                                                \
    EFF_UNROLL for (int o = 0; o < EFF_DW_COLS; o++) {                                                         \
        if (o >= cols) break;                                                                                  \
        __m512 v = _mm512_add_ps(acc[o], bias_v);                                                              \
        v = ACTIVATE;                                                                                          \
        if (residual) v = _mm512_add_ps(v, EFF_DW_LOAD(residual + o * c));                                     \
        if (MASKED) _mm512_mask_storeu_ps(out + o * c, m, v);                                                  \
        else _mm512_storeu_ps(out + o * c, v);                                                                 \
    }
#define EFF_DW_LOAD(p) (MASKED ? _mm512_maskz_loadu_ps(m, p) : _mm512_loadu_ps(p))
static inline EFF_AVX512 __attribute__((always_inline)) void depthwise_block_512(
    const int K, const int S, const int D, const int CHECK, const int MASKED, long dilation,
    const float *restrict image, long w, long c, const float *restrict weight, long iy0, long ky_begin, long ky_end,
    long ix0, long cols, __mmask16 m, float *restrict out, const float *restrict bias, int activation,
    const float *restrict residual) {
    __m512 acc[EFF_DW_COLS];
    EFF_UNROLL for (int o = 0; o < EFF_DW_COLS; o++) acc[o] = _mm512_setzero_ps();
    for (long ky = ky_begin; ky < ky_end; ky++) {
        const float *in_row = image + (iy0 + ky * (D ? D : dilation)) * w * c;
        __m512 wv[5];
        EFF_UNROLL for (int kx = 0; kx < K; kx++) wv[kx] = EFF_DW_LOAD(weight + (ky * K + kx) * c);
        if (D) {
            EFF_UNROLL for (int j = 0; j < (EFF_DW_COLS - 1) * S + (K - 1) * D + 1; j++) {
                long ix = ix0 + j;
                /* Over the padding a zero mask: a masked load reads nothing there (no fault either). */
                __m512 x = CHECK ? _mm512_maskz_loadu_ps(ix >= 0 && ix < w ? m : 0, in_row + ix * c) : EFF_DW_LOAD(in_row + ix * c);
                EFF_UNROLL for (int kx = 0; kx < K; kx++) {
                    int o = (j - kx * D) / S;
                    if (j >= kx * D && (j - kx * D) % S == 0 && o < EFF_DW_COLS) acc[o] = _mm512_fmadd_ps(x, wv[kx], acc[o]);
                }
            }
        } else {
            EFF_UNROLL for (int kx = 0; kx < K; kx++) {
                EFF_UNROLL for (int o = 0; o < EFF_DW_COLS; o++) {
                    long ix = ix0 + o * S + kx * dilation;
                    __m512 x = CHECK ? _mm512_maskz_loadu_ps(ix >= 0 && ix < w ? m : 0, in_row + ix * c) : EFF_DW_LOAD(in_row + ix * c);
                    acc[o] = _mm512_fmadd_ps(x, wv[kx], acc[o]);
                }
            }
        }
    }
    __m512 bias_v = bias ? EFF_DW_LOAD(bias) : _mm512_setzero_ps();
    switch (activation) {
    case EFF_ACT_SILU: EFF_DW_FINISH(_mm512_mul_ps(v, sigmoid_avx512(v))) break;
    case EFF_ACT_SIGMOID: EFF_DW_FINISH(sigmoid_avx512(v)) break;
    case EFF_ACT_RELU: EFF_DW_FINISH(_mm512_max_ps(v, _mm512_setzero_ps())) break;
    case EFF_ACT_RELU6: EFF_DW_FINISH(_mm512_min_ps(_mm512_max_ps(v, _mm512_setzero_ps()), _mm512_set1_ps(6.0f))) break;
    default: EFF_DW_FINISH(v) break;
    }
}

#define EFF_DW_BLOCK(K, S, DILATED, CHECK, MASKED)                                                             \
    depthwise_block_512(K, S, DILATED, CHECK, MASKED, dilation, image + ch, w, c, weight + ch, iy0, ky_begin,   \
                        ky_end, ox * S - pad_left, cols, m, out_row + ox * c + ch, bias_ch, activation, res)
/* The four combinations of edge checks and channel mask, each compiled on its own. */
#define EFF_DW_CALL(K, S, DILATED, check, masked)                                                              \
    if (!check && !masked) EFF_DW_BLOCK(K, S, DILATED, 0, 0);                                                  \
    else if (!check) EFF_DW_BLOCK(K, S, DILATED, 0, 1);                                                        \
    else if (!masked) EFF_DW_BLOCK(K, S, DILATED, 1, 0);                                                       \
    else EFF_DW_BLOCK(K, S, DILATED, 1, 1);
/* Output rows [row_begin, row_end), channels [c_begin, c_end): each 16-channel slice of a row, then its
   blocks of columns. */
/* D: the dilation when known to the compiler (1 or 2: shared loads), 0 for any other (per-tap loads). */
#define EFF_DEPTHWISE_512(NAME, K, S, DILATED)                                                                 \
    static EFF_AVX512 void NAME(const float *input, long h, long w, long c, const float *weight, long dilation,  \
                                long pad_top, long pad_left, long oh, long ow, float *out, long row_begin,      \
                                long row_end, long c_begin, long c_end, const float *bias, int activation,      \
                                const float *residual) {                                                        \
        /* Blocks whose every tap lies inside the row: [interior_begin, interior_end) columns. */             \
        long interior_begin = (pad_left + S - 1) / S;                                                          \
        long reach = (K - 1) * dilation - pad_left;                                                            \
        long interior_end = w - 1 - reach >= 0 ? (w - 1 - reach) / S + 1 : 0;                                  \
        if (interior_end > ow) interior_end = ow;                                                              \
        for (long row = row_begin; row < row_end; row++) {                                                     \
            long b = row / oh, oy = row % oh, iy0 = oy * S - pad_top;                                          \
            long ky_begin = 0, ky_end = K;                                                                     \
            while (ky_begin < K && iy0 + ky_begin * dilation < 0) ky_begin++;                                  \
            while (ky_end > ky_begin && iy0 + (ky_end - 1) * dilation >= h) ky_end--;                          \
            const float *image = input + b * h * w * c;                                                        \
            float *out_row = out + row * ow * c;                                                               \
            const float *res_row = residual ? residual + row * ow * c : 0;                                     \
            for (long ch = c_begin; ch < c_end; ch += 16) {                                                    \
                __mmask16 m = c_end - ch >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (c_end - ch)) - 1);     \
                int masked = m != 0xFFFF;                                                                      \
                const float *bias_ch = bias ? bias + ch : 0;                                                   \
                for (long ox = 0; ox < ow; ox += EFF_DW_COLS) {                                                \
                    long cols = ow - ox < EFF_DW_COLS ? ow - ox : EFF_DW_COLS;                                  \
                    int inside = ox >= interior_begin && ox + EFF_DW_COLS <= interior_end;                     \
                    const float *res = res_row ? res_row + ox * c + ch : 0;                                    \
                    EFF_DW_CALL(K, S, DILATED, inside ? 0 : 1, masked)                                         \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }
EFF_DEPTHWISE_512(depthwise_512_k3s1, 3, 1, 1)
EFF_DEPTHWISE_512(depthwise_512_k3s2, 3, 2, 1)
EFF_DEPTHWISE_512(depthwise_512_k5s1, 5, 1, 1)
EFF_DEPTHWISE_512(depthwise_512_k5s2, 5, 2, 1)
EFF_DEPTHWISE_512(depthwise_512_k3s1_d2, 3, 1, 2)
EFF_DEPTHWISE_512(depthwise_512_k5s1_d2, 5, 1, 2)
EFF_DEPTHWISE_512(depthwise_512_k3s1_dilated, 3, 1, 0)
EFF_DEPTHWISE_512(depthwise_512_k5s1_dilated, 5, 1, 0)

/* The AVX-512 kernel for 3x3 and 5x5 at stride 1 or 2 (every EfficientNet, BiFPN and ASPP
   depthwise layer); 0 when the shape has none. */
static EFF_AVX512 int depthwise_avx512(const float *input, long h, long w, long c, const float *weight, long k, long stride,
                                       long dilation, long pad_top, long pad_left, long oh, long ow, float *out,
                                       long row_begin, long row_end, long c_begin, long c_end, const float *bias,
                                       int activation, const float *residual) {
    void (*kernel)(const float *, long, long, long, const float *, long, long, long, long, long, float *, long, long,
                   long, long, const float *, int, const float *) = 0;
    if (dilation == 1) {
        if (k == 3 && stride == 1) kernel = depthwise_512_k3s1;
        else if (k == 3 && stride == 2) kernel = depthwise_512_k3s2;
        else if (k == 5 && stride == 1) kernel = depthwise_512_k5s1;
        else if (k == 5 && stride == 2) kernel = depthwise_512_k5s2;
    } else if (dilation == 2 && stride == 1) {
        if (k == 3) kernel = depthwise_512_k3s1_d2;
        else if (k == 5) kernel = depthwise_512_k5s1_d2;
    } else if (stride == 1) {
        if (k == 3) kernel = depthwise_512_k3s1_dilated;
        else if (k == 5) kernel = depthwise_512_k5s1_dilated;
    }
    if (!kernel) return 0;
    kernel(input, h, w, c, weight, dilation, pad_top, pad_left, oh, ow, out, row_begin, row_end, c_begin, c_end, bias,
           activation, residual);
    return 1;
}

static EFF_AVX2 void depthwise_avx2(const float *input, long h, long w, long c, const float *weight, long k, long stride,
                                    long dilation, long pad_top, long pad_left, long oh, long ow, float *out, long row_begin,
                                    long row_end, long c_begin, long c_end, const float *bias, int activation,
                                    const float *residual) {
    if (c % 8 == 0 && c_begin % 8 == 0 && c_end % 8 == 0) {
        depthwise_avx2_blocked(input, h, w, c, weight, k, stride, dilation, pad_top, pad_left, oh, ow, out, row_begin,
                               row_end, c_begin, c_end, bias, activation, residual);
        return;
    }
    depthwise_body(input, h, w, c, weight, k, stride, dilation, pad_top, pad_left, oh, ow, out, row_begin, row_end, c_begin,
                   c_end, bias, activation, residual);
}
static EFF_AVX2 void pool_avx2(const float *input, long h, long w, long c, long k, long stride, long pad_top,
                               long pad_left, long pad_bottom, long pad_right, long oh, long ow, float *out, long row_begin,
                               long row_end, int is_max, int count_include_pad) {
    pool_body(input, h, w, c, k, stride, pad_top, pad_left, pad_bottom, pad_right, oh, ow, out, row_begin, row_end, is_max,
              count_include_pad);
}
static EFF_AVX2 void weighted_sum_avx2(float *out, const float *const *inputs, const float *weights, long terms, long count) {
    weighted_sum_body(out, inputs, weights, terms, count);
}
int eff_kernels_use_avx2(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    }
    return cached;
}
#else
int eff_kernels_use_avx2(void) { return 0; }
int eff_kernels_use_avx512(void) { return 0; }
#endif

void eff_epilogue(float *out, long rows, long channels, const float *bias, int activation, const float *residual) {
#if defined(__x86_64__)
    if (eff_kernels_use_avx2()) { epilogue_avx2(out, rows, channels, bias, activation, residual); return; }
#endif
    epilogue_body(out, rows, channels, bias, activation, residual);
}

void eff_depthwise_isa(int isa, const float *input, long h, long w, long c, const float *weight, long k, long stride,
                       long dilation, long pad_top, long pad_left, long oh, long ow, float *out, long row_begin, long row_end,
                       long c_begin, long c_end, const float *bias, int activation, const float *residual) {
#if defined(__x86_64__)
    if (isa >= 2 && eff_kernels_use_avx512() &&
        depthwise_avx512(input, h, w, c, weight, k, stride, dilation, pad_top, pad_left, oh, ow, out, row_begin, row_end,
                         c_begin, c_end, bias, activation, residual))
        return;
    if (isa >= 1 && eff_kernels_use_avx2()) {
        depthwise_avx2(input, h, w, c, weight, k, stride, dilation, pad_top, pad_left, oh, ow, out, row_begin, row_end,
                       c_begin, c_end, bias, activation, residual);
        return;
    }
#endif
    depthwise_body(input, h, w, c, weight, k, stride, dilation, pad_top, pad_left, oh, ow, out, row_begin, row_end, c_begin,
                   c_end, bias, activation, residual);
}

void eff_depthwise(const float *input, long h, long w, long c, const float *weight, long k, long stride, long dilation,
                   long pad_top, long pad_left, long oh, long ow, float *out, long row_begin, long row_end, long c_begin,
                   long c_end, const float *bias, int activation, const float *residual) {
    eff_depthwise_isa(2, input, h, w, c, weight, k, stride, dilation, pad_top, pad_left, oh, ow, out, row_begin, row_end,
                      c_begin, c_end, bias, activation, residual);
}

void eff_depthwise_window(const float *rows, long first_row, long h, long w, long c, const float *weight, long k,
                          long stride, long dilation, long pad_top, long pad_left, long oh, long ow, float *out,
                          long row_begin, long row_end, long c_begin, long c_end, const float *bias, int activation,
                          const float *residual) {
    /* The kernels address input row iy at input + iy * w * c and touch only the rows they need. */
    eff_depthwise(rows - first_row * w * c, h, w, c, weight, k, stride, dilation, pad_top, pad_left, oh, ow, out, row_begin,
                  row_end, c_begin, c_end, bias, activation, residual);
}

void eff_pool2d(const float *input, long h, long w, long c, long k, long stride, long pad_top, long pad_left,
                long pad_bottom, long pad_right, long oh, long ow, float *out, long row_begin, long row_end, int is_max,
                int count_include_pad) {
#if defined(__x86_64__)
    if (eff_kernels_use_avx2()) {
        pool_avx2(input, h, w, c, k, stride, pad_top, pad_left, pad_bottom, pad_right, oh, ow, out, row_begin, row_end, is_max,
                  count_include_pad);
        return;
    }
#endif
    pool_body(input, h, w, c, k, stride, pad_top, pad_left, pad_bottom, pad_right, oh, ow, out, row_begin, row_end, is_max,
              count_include_pad);
}

void eff_im2col(const float *input, long h, long w, long c, long k, long stride, long dilation, long pad_top,
                long pad_left, long oh, long ow, long row_begin, long row_end, float *out) {
    if (row_begin >= row_end) return;
    /* The row's image, y and x, divided out once and then stepped (divisions per row cost more
       than a stem's 27-value row). */
    long b = row_begin / (oh * ow), oy = (row_begin / ow) % oh, ox = row_begin % ow;
    for (long row = row_begin; row < row_end; row++) {
        long ix0 = ox * stride - pad_left;
        for (long ky = 0; ky < k; ky++) {
            long iy = oy * stride - pad_top + ky * dilation;
            if (dilation == 1 && iy >= 0 && iy < h && ix0 >= 0 && ix0 + k <= w) {
                /* The k taps of this window row are k neighbouring pixels: one contiguous copy (a
                   plain loop: for a stem's 3 x 3 channels a memcpy call costs more than the copy). */
                const float *src = input + ((b * h + iy) * w + ix0) * c;
                for (long t = 0; t < k * c; t++) out[t] = src[t];
                out += k * c;
                continue;
            }
            for (long kx = 0; kx < k; kx++) {
                long ix = ix0 + kx * dilation;
                if (iy >= 0 && iy < h && ix >= 0 && ix < w) {
                    const float *src = input + ((b * h + iy) * w + ix) * c;
                    for (long ch = 0; ch < c; ch++) out[ch] = src[ch];
                } else {
                    for (long ch = 0; ch < c; ch++) out[ch] = 0.0f;
                }
                out += c;
            }
        }
        if (++ox == ow) {
            ox = 0;
            if (++oy == oh) { oy = 0; b++; }
        }
    }
}

void eff_weighted_sum(float *out, const float *const *inputs, const float *weights, long terms, long count) {
#if defined(__x86_64__)
    if (eff_kernels_use_avx2()) { weighted_sum_avx2(out, inputs, weights, terms, count); return; }
#endif
    weighted_sum_body(out, inputs, weights, terms, count);
}

static inline __attribute__((always_inline)) void resize_bilinear_body(
    const float *restrict input, long h, long w, long c, float *restrict out, long out_stride, long oh, long ow,
    const long *y0, const long *y1, const float *wy, const long *x0, const long *x1, const float *wx, long row_begin,
    long row_end) {
    for (long row = row_begin; row < row_end; row++) {
        long b = row / oh, oy = row % oh;
        const float *restrict r0 = input + (b * h + y0[oy]) * w * c;
        const float *restrict r1 = input + (b * h + y1[oy]) * w * c;
        float wy1 = wy[oy], wy0 = 1.0f - wy1;
        float *restrict dst_row = out + row * ow * out_stride;
        for (long ox = 0; ox < ow; ox++) {
            const float *restrict a = r0 + x0[ox] * c, *restrict bb = r0 + x1[ox] * c;
            const float *restrict cc = r1 + x0[ox] * c, *restrict d = r1 + x1[ox] * c;
            float wx1 = wx[ox], wx0 = 1.0f - wx1;
            float *restrict dst = dst_row + ox * out_stride;
            for (long ch = 0; ch < c; ch++) {
                float top = wx0 * a[ch] + wx1 * bb[ch];
                float bottom = wx0 * cc[ch] + wx1 * d[ch];
                dst[ch] = wy0 * top + wy1 * bottom;
            }
        }
    }
}

#if defined(__x86_64__)
static EFF_AVX2 void resize_bilinear_avx2(const float *input, long h, long w, long c, float *out, long out_stride, long oh, long ow,
                                          const long *y0, const long *y1, const float *wy, const long *x0, const long *x1,
                                          const float *wx, long row_begin, long row_end) {
    resize_bilinear_body(input, h, w, c, out, out_stride, oh, ow, y0, y1, wy, x0, x1, wx, row_begin, row_end);
}
#endif

void eff_resize_bilinear(const float *input, long h, long w, long c, float *out, long out_stride, long oh, long ow, const long *y0,
                         const long *y1, const float *wy, const long *x0, const long *x1, const float *wx, long row_begin,
                         long row_end) {
#if defined(__x86_64__)
    if (eff_kernels_use_avx2()) {
        resize_bilinear_avx2(input, h, w, c, out, out_stride, oh, ow, y0, y1, wy, x0, x1, wx, row_begin, row_end);
        return;
    }
#endif
    resize_bilinear_body(input, h, w, c, out, out_stride, oh, ow, y0, y1, wy, x0, x1, wx, row_begin, row_end);
}

void eff_channel_sums(const float *input, long pixels, long channels, double *totals) {
    /* Rows of 64 pixels summed in float (vectorised), rows accumulated in double. */
    float partial[4096];
    for (long base = 0; base < channels; base += 4096) {
        long n = channels - base < 4096 ? channels - base : 4096;
        for (long i = 0; i < n; i++) totals[base + i] = 0;
        for (long p0 = 0; p0 < pixels; p0 += 64) {
            long p1 = p0 + 64 < pixels ? p0 + 64 : pixels;
            for (long i = 0; i < n; i++) partial[i] = 0;
            for (long p = p0; p < p1; p++) {
                const float *px = input + p * channels + base;
                for (long i = 0; i < n; i++) partial[i] += px[i];
            }
            for (long i = 0; i < n; i++) totals[base + i] += partial[i];
        }
    }
}

void eff_keep_freed_memory(void) {
#if defined(__GLIBC__)
    mallopt(M_MMAP_THRESHOLD, 256 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}

long eff_affinity_cpu_count(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
#endif
    return 0;
}

/* Each range is one 64-bit word, front << 32 | back, a cache line apart from the next. */
void eff_ranges_init(uint64_t *state, long count, long threads) {
    for (long t = 0; t < threads; t++) {
        uint64_t front = (uint64_t)(count * t / threads), back = (uint64_t)(count * (t + 1) / threads);
        __atomic_store_n(&state[t * EFF_RANGES_WORDS], front << 32 | back, __ATOMIC_RELAXED);
    }
}

/* Takes a chunk from the front (own range) or the back (another's) of range `victim`. */
static int ranges_take(uint64_t *range, int from_front, long grain, long *start, long *end) {
    uint64_t seen = __atomic_load_n(range, __ATOMIC_RELAXED);
    while (1) {
        uint64_t front = seen >> 32, back = seen & 0xFFFFFFFFu;
        if (front >= back) return 0;
        uint64_t size = (back - front + 3) / 4;
        if (size < (uint64_t)grain) size = (uint64_t)grain;
        if (size > back - front) size = back - front;
        uint64_t next = from_front ? (front + size) << 32 | back : front << 32 | (back - size);
        if (__atomic_compare_exchange_n(range, &seen, next, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
            *start = (long)(from_front ? front : back - size);
            *end = (long)(from_front ? front + size : back);
            return 1;
        }
    }
}

int eff_ranges_next(uint64_t *state, long threads, long thread, long grain, long *start, long *end) {
    if (ranges_take(&state[thread * EFF_RANGES_WORDS], 1, grain, start, end)) return 1;
    while (1) {
        long victim = -1;
        uint64_t most = 0;
        for (long t = 0; t < threads; t++) {
            uint64_t v = __atomic_load_n(&state[t * EFF_RANGES_WORDS], __ATOMIC_RELAXED);
            uint64_t left = (v >> 32) < (v & 0xFFFFFFFFu) ? (v & 0xFFFFFFFFu) - (v >> 32) : 0;
            if (left > most) { most = left; victim = t; }
        }
        if (victim < 0) return 0;
        if (ranges_take(&state[victim * EFF_RANGES_WORDS], 0, grain, start, end)) return 1;
    }
}

/* ---- GEMM with pre-packed weights and the epilogue fused ----
   C[m x n] = A[m x k] (rows lda apart) * B[k x n], B packed once (eff_gemm_pack_b) into panels of
   16 columns, each [k][16] contiguous, zero-padded to a multiple of 32 columns. One micro-kernel
   body (GCC vector extensions, 16 lanes) is compiled per instruction set with its own register
   block: AVX-512 12 rows x 32 columns (24 zmm accumulators, the epilogue applied to them before
   the store), AVX2 6 x 16 (12 ymm, the epilogue on the block just stored, in L1). Other CPUs:
   OpenBLAS per panel. No BLAS interface takes pre-packed weights or fuses an epilogue; those
   two are where these kernels gain over sgemm + a separate pass. */

typedef float eff_v16 __attribute__((vector_size(64)));
#define EFF_SPLAT16(x) ((eff_v16){x, x, x, x, x, x, x, x, x, x, x, x, x, x, x, x})
#ifndef EFF_UNROLL
#define EFF_UNROLL _Pragma("clang loop unroll(full)")
#endif

long eff_gemm_packed_size(long k, long n) { return k * ((n + 31) / 32 * 32); }

void eff_gemm_pack_b(const float *b, long k, long n, float *packed) {
    long panels = (n + 31) / 32 * 2;
    for (long q = 0; q < panels; q++) {
        float *dst = packed + q * k * 16;
        for (long p = 0; p < k; p++) {
            for (long j = 0; j < 16; j++) {
                long col = q * 16 + j;
                dst[p * 16 + j] = col < n ? b[p * n + col] : 0.0f;
            }
        }
    }
}

/* acc[MR][NV] = A rows (a, lda) x panels b (NV panels, panel_stride apart), then FINISH stores
   it to c (ldc): EFF_STORE_BLOCK as it is (the driver applies the epilogue after), or
   EFF_FINISH_BLOCK_512 with bias, activation and residual applied in registers first. */
#define EFF_GEMM_MICRO(NAME, ATTR, MR, NV, FINISH)                                                             \
    static inline ATTR __attribute__((always_inline)) int NAME(                                                \
        const float *restrict a, long lda, long k, const float *restrict b, long panel_stride, float *restrict c, \
        long ldc, const float *bias, int activation, const float *residual, long ldr, long cols,              \
        const float *next) {                                                                                   \
        eff_v16 acc[MR][NV];                                                                                   \
        EFF_UNROLL for (int i = 0; i < MR; i++)                                                                \
            EFF_UNROLL for (int j = 0; j < NV; j++) acc[i][j] = EFF_SPLAT16(0.0f);                             \
        for (long p = 0; p < k; p++) {                                                                         \
            eff_v16 bv[NV];                                                                                    \
            if (next) EFF_UNROLL for (int j = 0; j < NV; j++) __builtin_prefetch(next + j * panel_stride + p * 16, 0, 3); \
            EFF_UNROLL for (int j = 0; j < NV; j++) __builtin_memcpy(&bv[j], b + j * panel_stride + p * 16, 64); \
            EFF_UNROLL for (int i = 0; i < MR; i++) {                                                          \
                eff_v16 av = EFF_SPLAT16(a[i * lda + p]);                                                      \
                EFF_UNROLL for (int j = 0; j < NV; j++) acc[i][j] += av * bv[j];                               \
            }                                                                                                  \
        }                                                                                                      \
        FINISH(MR, NV)                                                                                         \
    }

/* Stores the block; returns 0: the epilogue is still to be applied. */
#define EFF_STORE_BLOCK(MR, NV)                                                                                \
    (void)bias; (void)activation; (void)residual; (void)ldr; (void)cols;                                       \
    EFF_UNROLL for (int i = 0; i < MR; i++)                                                                    \
        EFF_UNROLL for (int j = 0; j < NV; j++) __builtin_memcpy(c + i * ldc + j * 16, &acc[i][j], 64);        \
    return 0;

/* The driver: column blocks of 16*NV, rows in blocks of MR (the remainder in smaller blocks);
   full blocks are written in place, partial column blocks through a scratch tile. */
#define EFF_GEMM_DRIVER(NAME, ATTR, MR, NV, ROW_EPILOGUE, FINISH)                                              \
    EFF_GEMM_MICRO(NAME##_mr, ATTR, MR, NV, FINISH)                                                            \
    EFF_GEMM_MICRO(NAME##_4, ATTR, 4, NV, FINISH)                                                              \
    EFF_GEMM_MICRO(NAME##_1, ATTR, 1, NV, FINISH)                                                              \
    /* One panel wide, for a last block of at most 16 columns. */                                             \
    EFF_GEMM_MICRO(NAME##_mr_narrow, ATTR, MR, 1, FINISH)                                                      \
    EFF_GEMM_MICRO(NAME##_4_narrow, ATTR, 4, 1, FINISH)                                                        \
    EFF_GEMM_MICRO(NAME##_1_narrow, ATTR, 1, 1, FINISH)                                                        \
    static ATTR void NAME(const float *a, long lda, long m, long k, const float *packed, long n, float *c,      \
                          long ldc, const float *bias, int activation, const float *residual, long ldr,         \
                          long prefetch_after) {                                                               \
        const long width = 16 * NV;                                                                            \
        float scratch[MR * 16 * NV];                                                                           \
        for (long j0 = 0; j0 < n; j0 += width) {                                                               \
            const float *b = packed + (j0 / 16) * k * 16;                                                      \
            long cols = n - j0 < width ? n - j0 : width;                                                       \
            const float *block_bias = bias ? bias + j0 : 0;                                                    \
            for (long i0 = 0; i0 < m;) {                                                                       \
                long rows = m - i0 >= MR ? MR : (m - i0 >= 4 && MR > 4 ? 4 : 1);                               \
                int full = cols == width;                                                                      \
                float *target = full ? c + i0 * ldc + j0 : scratch;                                            \
                long ld = full ? ldc : width;                                                                  \
                const float *block_residual = residual ? residual + i0 * ldr + j0 : 0;                         \
                /* The first row block also fetches the next column block's weights (past n when the \
                   caller's next call reads them): they come from memory (a pass reads each layer's   \
                   once), and with few rows nothing hides the wait. */                               \
                const float *next = i0 == 0 && j0 + width < n + prefetch_after ? packed + ((j0 + width) / 16) * k * 16 : 0; \
                int done;                                                                                      \
                const float *ai = a + i0 * lda;                                                                \
                if (NV > 1 && cols <= 16) {                                                                    \
                    if (rows == MR) done = NAME##_mr_narrow(ai, lda, k, b, k * 16, target, ld, block_bias,     \
                                                            activation, block_residual, ldr, cols, next);            \
                    else if (rows == 4) done = NAME##_4_narrow(ai, lda, k, b, k * 16, target, ld, block_bias,  \
                                                               activation, block_residual, ldr, cols, next);         \
                    else done = NAME##_1_narrow(ai, lda, k, b, k * 16, target, ld, block_bias, activation,     \
                                                block_residual, ldr, cols, next);                                    \
                } else if (rows == MR) done = NAME##_mr(ai, lda, k, b, k * 16, target, ld, block_bias,         \
                                                        activation, block_residual, ldr, cols, next);                \
                else if (rows == 4) done = NAME##_4(ai, lda, k, b, k * 16, target, ld, block_bias, activation, \
                                                    block_residual, ldr, cols, next);                                \
                else done = NAME##_1(ai, lda, k, b, k * 16, target, ld, block_bias, activation, block_residual, \
                                     ldr, cols, next);                                                               \
                for (long i = 0; i < rows; i++) {                                                              \
                    float *row = c + (i0 + i) * ldc + j0;                                                      \
                    if (!full) memcpy(row, scratch + i * width, cols * sizeof(float));                         \
                    if (!done) ROW_EPILOGUE(row, cols, block_bias, activation,                                 \
                                            block_residual ? block_residual + i * ldr : 0);                    \
                }                                                                                              \
                i0 += rows;                                                                                    \
            }                                                                                                  \
        }                                                                                                      \
    }

/* Without AVX2 (other CPUs, other architectures): OpenBLAS on each panel (a row-major k x 16
   matrix), then the epilogue. */
static void gemm_openblas(const float *a, long lda, long m, long k, const float *packed, long n, float *c, long ldc,
                          const float *bias, int activation, const float *residual, long ldr) {
    for (long j0 = 0; j0 < n; j0 += 16) {
        long cols = n - j0 < 16 ? n - j0 : 16;
        float block[16 * 16];
        for (long i0 = 0; i0 < m; i0 += 16) {
            long rows = m - i0 < 16 ? m - i0 : 16;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)rows, 16, (blasint)k, 1.0f, a + i0 * lda,
                        (blasint)lda, packed + (j0 / 16) * k * 16, 16, 0.0f, block, 16);
            for (long i = 0; i < rows; i++) {
                float *row = c + (i0 + i) * ldc + j0;
                memcpy(row, block + i * 16, cols * sizeof(float));
                epilogue_row(row, cols, bias ? bias + j0 : 0, activation, residual ? residual + (i0 + i) * ldr + j0 : 0);
            }
        }
    }
}

#if defined(__x86_64__)
EFF_GEMM_DRIVER(gemm_avx2, EFF_AVX2, 6, 1, epilogue_row_avx2, EFF_STORE_BLOCK)

EFF_GEMM_DRIVER(gemm_avx512, EFF_AVX512, 12, 2, epilogue_row_avx512, EFF_FINISH_BLOCK_512)
#endif

/* Direct convolutions with few input channels (eff_conv_small_input and its bf16 version) run
   band by band: the input rows under a few output rows are copied, zero-padded, into a buffer
   wide enough for every block of 12 output pixels, so that the kernel checks no bounds. */
long eff_small_input_band(long row, long row_end, long oh, long ow, long k, long stride, long pad_top, long *first_row,
                          long *rows, long *width) {
    long image_end = (row / oh + 1) * oh, end = row + EFF_SMALL_INPUT_BAND;
    if (end > row_end) end = row_end;
    if (end > image_end) end = image_end;
    *first_row = (row % oh) * stride - pad_top;
    *rows = (end - row - 1) * stride + k;
    *width = ((ow + 11) / 12 * 12 - 1) * stride + k;
    return end;
}

void eff_small_input_pad_band(const float *image, long h, long w, long cin, long pad_left, long first_row, long rows,
                              long width, void *band, long element_size,
                              void (*convert)(const float *src, long count, void *dst)) {
    char *out = band;
    long left = pad_left < width ? pad_left : width, columns = w < width - left ? w : width - left;
    for (long y = 0; y < rows; y++) {
        char *dst = out + y * width * cin * element_size;
        long iy = first_row + y, inside = iy < 0 || iy >= h ? 0 : columns;
        memset(dst, 0, (size_t)(left * cin * element_size));
        if (inside) convert(image + iy * w * cin, inside * cin, dst + left * cin * element_size);
        memset(dst + (left + inside) * cin * element_size, 0, (size_t)((width - left - inside) * cin * element_size));
    }
}

static void copy_floats(const float *src, long count, void *dst) { memcpy(dst, src, (size_t)count * sizeof(float)); }

void *eff_thread_buffer(long bytes) {
    static _Thread_local void *buffer;
    static _Thread_local long capacity;
    if (bytes > capacity) {
        void *grown = realloc(buffer, (size_t)bytes);
        if (!grown) return 0;
        buffer = grown;
        capacity = bytes;
    }
    return buffer;
}

#if defined(__x86_64__)
/* 12 output pixels x 32 output channels of a direct convolution with few input channels on a
   zero-padded band (the window of pixel i starts i * stride pixels right of `corner`), over all
   k * k * cin taps, then the fused epilogue. Called with constant cin, k and stride, every load is
   at a fixed offset from `corner`. */
static inline EFF_AVX512 __attribute__((always_inline)) int small_input_block(
    const float *restrict corner, long row_values, const long cin, const long k, const long stride,
    const float *restrict b, long panel_stride, float *restrict c, long ldc, const float *bias, int activation, long cols) {
    const float *residual = 0; /* for EFF_FINISH_BLOCK_512: a stem has no residual */
    const long ldr = 0;
    eff_v16 acc[12][2];
    EFF_UNROLL for (int i = 0; i < 12; i++) { acc[i][0] = EFF_SPLAT16(0.0f); acc[i][1] = EFF_SPLAT16(0.0f); }
    long t = 0;
    for (long ky = 0; ky < k; ky++) {
        const float *in_row = corner + ky * row_values;
        for (long r = 0; r < k * cin; r++, t++) {
            eff_v16 b0, b1;
            __builtin_memcpy(&b0, b + t * 16, 64);
            __builtin_memcpy(&b1, b + panel_stride + t * 16, 64);
            EFF_UNROLL for (int i = 0; i < 12; i++) {
                eff_v16 av = EFF_SPLAT16(in_row[i * stride * cin + r]);
                acc[i][0] += av * b0;
                acc[i][1] += av * b1;
            }
        }
    }
    EFF_FINISH_BLOCK_512(12, 2)
}

/* eff_conv_small_input's layer, for its blocks. */
typedef struct {
    const float *packed, *bias;
    long cin, k, stride, depth;
    int activation;
} small_input_layer;

static EFF_AVX512 void small_input_block_f32(const void *corner, long width, long j0, float *target, long ld, long cols,
                                             const void *layer) {
    const small_input_layer *l = layer;
    /* A last block of 16 columns reads its (zero) neighbour panel: eff_gemm_pack_b pads n to 32. */
    const float *b0 = l->packed + (j0 / 16) * l->depth * 16, *bias = l->bias ? l->bias + j0 : 0;
    if (l->cin == 3 && l->k == 3 && l->stride == 2) /* every EfficientNet's stem: constant offsets */
        small_input_block(corner, width * 3, 3, 3, 2, b0, l->depth * 16, target, ld, bias, l->activation, cols);
    else
        small_input_block(corner, width * l->cin, l->cin, l->k, l->stride, b0, l->depth * 16, target, ld, bias,
                          l->activation, cols);
}

int eff_conv_small_input(const float *input, long h, long w, long cin, long k, long stride, long pad_top, long pad_left,
                         long oh, long ow, const float *packed, long n_out, float *out, long row_begin, long row_end,
                         const float *bias, int activation) {
    if (!eff_kernels_use_avx512()) return 0;
    small_input_layer layer = {packed, bias, cin, k, stride, k * k * cin, activation};
    return eff_small_input_rows(input, h, w, cin, k, stride, pad_top, pad_left, oh, ow, n_out, out, row_begin, row_end,
                                sizeof(float), copy_floats, small_input_block_f32, &layer);
}
#else
int eff_conv_small_input(const float *input, long h, long w, long cin, long k, long stride, long pad_top, long pad_left,
                         long oh, long ow, const float *packed, long n_out, float *out, long row_begin, long row_end,
                         const float *bias, int activation) {
    return 0;
}
#endif

void eff_gemm_packed_isa(int isa, const float *a, long lda, long m, long k, const float *packed, long n, float *c,
                         long ldc, const float *bias, int activation, const float *residual, long ldr, long prefetch_after) {
#if defined(__x86_64__)
    if (isa >= 2 && eff_kernels_use_avx512()) { gemm_avx512(a, lda, m, k, packed, n, c, ldc, bias, activation, residual, ldr, prefetch_after); return; }
    if (isa >= 1 && eff_kernels_use_avx2()) { gemm_avx2(a, lda, m, k, packed, n, c, ldc, bias, activation, residual, ldr, prefetch_after); return; }
#endif
    gemm_openblas(a, lda, m, k, packed, n, c, ldc, bias, activation, residual, ldr);
}

void eff_gemm_packed(const float *a, long lda, long m, long k, const float *packed, long n, float *c, long ldc,
                     const float *bias, int activation, const float *residual, long ldr, long prefetch_after) {
    eff_gemm_packed_isa(2, a, lda, m, k, packed, n, c, ldc, bias, activation, residual, ldr, prefetch_after);
}
