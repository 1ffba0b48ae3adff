#ifndef EFF_KERNELS_H
#define EFF_KERNELS_H

#include <stdint.h>

/* Hot CPU kernels, NHWC float32. Each has an AVX2+FMA version selected at run time when the CPU
   has it (function attributes, no build flags) and a portable version otherwise. The plain
   Swift reference versions in the tests check both against the same results. */

#define EFF_ACT_IDENTITY 0
#define EFF_ACT_RELU 1
#define EFF_ACT_RELU6 2
#define EFF_ACT_SILU 3
#define EFF_ACT_SIGMOID 4

/* out[r][c] = act(out[r][c] + bias[c]) + residual[r][c] for rows x channels values.
   bias and residual may be NULL. */
void eff_epilogue(float *out, long rows, long channels, const float *bias, int activation, const float *residual);

/* Depthwise convolution for output rows [row_begin, row_end) of n*oh rows (row = image * oh + y)
   and channels [c_begin, c_end) of c (0 and c for all; otherwise multiples of 16 but for a last
   c_end = c). input [n, h, w, c], weight [k, k, c], out [n, oh, ow, c]; then the epilogue. */
void eff_depthwise(const float *input, long h, long w, long c, const float *weight, long k, long stride,
                   long dilation, long pad_top, long pad_left, long oh, long ow, float *out,
                   long row_begin, long row_end, long c_begin, long c_end, const float *bias, int activation,
                   const float *residual);

/* The same with the instruction set capped (0 plain C, 1 AVX2, 2 AVX-512), for the tests. */
void eff_depthwise_isa(int isa, const float *input, long h, long w, long c, const float *weight, long k, long stride,
                       long dilation, long pad_top, long pad_left, long oh, long ow, float *out, long row_begin, long row_end,
                       long c_begin, long c_end, const float *bias, int activation, const float *residual);

/* eff_depthwise for one image (n = 1) of which only input rows [first_row, ...) are at `rows`:
   the kernel reads just the rows that output rows [row_begin, row_end) need, which must be there. */
void eff_depthwise_window(const float *rows, long first_row, long h, long w, long c, const float *weight, long k,
                          long stride, long dilation, long pad_top, long pad_left, long oh, long ow, float *out,
                          long row_begin, long row_end, long c_begin, long c_end, const float *bias, int activation,
                          const float *residual);

/* Max (is_max) or average pooling, k x k windows, of output rows [row_begin, row_end) of n*oh
   (row = image * oh + y): input [n, h, w, c], out [n, oh, ow, c]. Windows are clipped to the
   padded input; the average divides by that clipped size (count_include_pad) or by the real
   pixels in the window. */
void eff_pool2d(const float *input, long h, long w, long c, long k, long stride, long pad_top, long pad_left,
                long pad_bottom, long pad_right, long oh, long ow, float *out, long row_begin, long row_end, int is_max,
                int count_include_pad);

/* Rows [row_begin, row_end) of the im2col matrix of input [n, h, w, c] for a k x k convolution
   with an oh x ow output (row = (image * oh + y) * ow + x): the k*k*c values under the window
   in (ky, kx, channel) order, zeros over padding, written contiguously to out. */
void eff_im2col(const float *input, long h, long w, long c, long k, long stride, long dilation, long pad_top,
                long pad_left, long oh, long ow, long row_begin, long row_end, float *out);

/* out[i] = sum_t weights[t] * inputs[t][i] for i < count. */
void eff_weighted_sum(float *out, const float *const *inputs, const float *weights, long terms, long count);

/* Whether the AVX2+FMA versions are in use. */
int eff_kernels_use_avx2(void);

/* Bilinear resize of output rows [row_begin, row_end) (row = image * oh + y): for each output
   row y and column x, taps (y0[y], y1[y], wy[y]) and (x0[x], x1[x], wx[x]) with
   out = (1 - wy) * ((1 - wx) * a + wx * b) + wy * ((1 - wx) * c + wx * d), per channel. Output
   pixels are out_stride floats apart (c for a tensor of its own, more for a slice of channels). */
void eff_resize_bilinear(const float *input, long h, long w, long c, float *out, long out_stride, long oh, long ow,
                         const long *y0, const long *y1, const float *wy, const long *x0, const long *x1,
                         const float *wx, long row_begin, long row_end);

/* Sums over `pixels` pixels of each of `channels` channels, in double (rows of 64 pixels summed
   in float first). */
void eff_channel_sums(const float *input, long pixels, long channels, double *totals);
/* Floats eff_gemm_pack_b writes for a k x n matrix (n rounded up to a multiple of 32). */
long eff_gemm_packed_size(long k, long n);

/* Packs row-major b [k x n] for eff_gemm_packed: panels of 16 columns, zero-padded. */
void eff_gemm_pack_b(const float *b, long k, long n, float *packed);

/* c[m x n] (rows ldc apart) = act(a[m x k] (rows lda apart) * B + bias) + residual (rows ldr
   apart), B packed by eff_gemm_pack_b; bias and residual may be NULL. prefetch_after: columns of
   B past the n computed here that the caller's next call on this thread reads (a layer split by
   output columns); the first block of them is fetched from memory during this call. */
void eff_gemm_packed(const float *a, long lda, long m, long k, const float *packed, long n, float *c, long ldc,
                     const float *bias, int activation, const float *residual, long ldr, long prefetch_after);

/* The same with the instruction set capped (0 OpenBLAS, 1 AVX2, 2 AVX-512), for the tests. */
void eff_gemm_packed_isa(int isa, const float *a, long lda, long m, long k, const float *packed, long n, float *c,
                         long ldc, const float *bias, int activation, const float *residual, long ldr,
                         long prefetch_after);

/* Output rows [row_begin, row_end) (row = image * oh + y) of a k x k convolution (dilation 1)
   of input [n, h, w, cin] with few input channels (a stem's 3), computed directly, without an
   im2col matrix (band by band, on the rows copied with their zero padding):
   out [n, oh, ow, n_out] = act(conv + bias), weights packed by eff_gemm_pack_b from the
   [k * k * cin][n_out] (HWIO) matrix; the numbers are those of the GEMM on the im2col matrix.
   Returns 0 on CPUs without AVX-512, having done nothing, or if out of memory. */
int eff_conv_small_input(const float *input, long h, long w, long cin, long k, long stride, long pad_top, long pad_left,
                         long oh, long ow, const float *packed, long n_out, float *out, long row_begin, long row_end,
                         const float *bias, int activation);

/* Whether the AVX-512 versions are in use. */
int eff_kernels_use_avx512(void);

/* ---- bfloat16 (gemm_bf16.c): products of bf16-rounded values (nearest even), float32 sums ---- */

/* Whether the CPU has AVX512_BF16 (VDPBF16PS), so eff_gemm_packed_bf16 runs at full speed. */
int eff_kernels_use_avx512_bf16(void);

/* 32-bit lanes eff_gemm_pack_bf16 writes for a k x n matrix. */
long eff_gemm_packed_bf16_size(long k, long n);

/* Rounds float32 panels packed by eff_gemm_pack_b (k x n) to bf16 pairs: panels of 16 columns,
   each [(k + 1) / 2][16] lanes holding rows 2p (low half) and 2p + 1 (high half). */
void eff_gemm_pack_bf16(const float *packed, long k, long n, uint32_t *out);

/* eff_gemm_packed with A rounded to bf16 on the fly and B packed by eff_gemm_pack_bf16. */
void eff_gemm_packed_bf16(const float *a, long lda, long m, long k, const uint32_t *packed, long n, float *c, long ldc,
                          const float *bias, int activation, const float *residual, long ldr);

/* eff_conv_small_input in bfloat16 with the layer's eff_gemm_pack_bf16 panels of the same
   [k * k * cin][n_out] matrix: the numbers are those of the bf16 GEMM on the im2col matrix.
   Returns 0 on CPUs without AVX512_BF16 or for windows of more than 2 * EFF_SMALL_INPUT_MAX_PAIRS
   values, having done nothing, or if out of memory. */
#define EFF_SMALL_INPUT_MAX_PAIRS 64
int eff_conv_small_input_bf16(const float *input, long h, long w, long cin, long k, long stride, long pad_top,
                              long pad_left, long oh, long ow, const uint32_t *panels, long n_out, float *out,
                              long row_begin, long row_end, const float *bias, int activation);

/* Rows of A rounded to bf16 once for several eff_gemm_rounded_bf16 calls (a layer whose output
   columns are split over threads): m rows of eff_bf16_row_width(k) values, the pad zero. */
long eff_bf16_row_width(long k);
void eff_bf16_round_rows(const float *a, long lda, long m, long k, uint16_t *out);

/* eff_gemm_packed_bf16 on rows rounded by eff_bf16_round_rows; prefetch_after as for
   eff_gemm_packed. */
void eff_gemm_rounded_bf16(const uint16_t *a, long m, long k, const uint32_t *packed, long n, float *c, long ldc,
                           const float *bias, int activation, const float *residual, long ldr, long prefetch_after);

/* The same numbers one multiply at a time (what CPUs without AVX512_BF16 run), for the tests. */
void eff_gemm_packed_bf16_portable(const float *a, long lda, long m, long k, const uint32_t *packed, long n, float *c,
                                   long ldc, const float *bias, int activation, const float *residual, long ldr);

/* glibc: blocks up to 256 MB from the heap (not a fresh mmap each) and no heap trimming, so
   freed tensor memory is reused warm by the next forward pass. */
void eff_keep_freed_memory(void);

/* CPUs in this process's affinity mask (taskset, cpusets), 0 when unknown. */
long eff_affinity_cpu_count(void);

/* Work ranges of a parallel loop over [0, count) with `threads` threads, in `state`
   (EFF_RANGES_WORDS words per thread): thread t owns [t*count/threads, (t+1)*count/threads)
   and takes chunks from its front (the same items as in the layer before: their data is in its
   cache); a thread whose range is used up takes chunks from the back of the fullest other
   range, so a slow or paused thread holds nobody up. Chunks are a quarter of what is left, at
   least `grain` items. eff_ranges_next returns 0 when no work is left. */
#define EFF_RANGES_WORDS 8
void eff_ranges_init(uint64_t *state, long count, long threads);
int eff_ranges_next(uint64_t *state, long threads, long thread, long grain, long *start, long *end);
#endif
