/* The band-by-band padding shared by the float32 (kernels.c) and bf16 (gemm_bf16.c) direct
   convolutions with few input channels. Internal to CKernels. */
#ifndef EFF_SMALL_INPUT_H
#define EFF_SMALL_INPUT_H

#include <string.h>

/* Output rows per band. */
#define EFF_SMALL_INPUT_BAND 8

/* The band that starts at output `row` (row = image * oh + y) and ends at the returned row (at
   most EFF_SMALL_INPUT_BAND rows, within [row, row_end) and one image): its first input row (may
   be negative: padding), its input rows and its padded width in pixels, wide enough for every
   block of 12 output pixels. */
long eff_small_input_band(long row, long row_end, long oh, long ow, long k, long stride, long pad_top, long *first_row,
                          long *rows, long *width);

/* Zero-padded rows [first_row, first_row + rows) of one image [h, w, cin], `width` pixels each
   with the image's columns from `pad_left` on, as elements of `element_size` bytes: `convert`
   writes `count` of them from floats. */
void eff_small_input_pad_band(const float *image, long h, long w, long cin, long pad_left, long first_row, long rows,
                              long width, void *band, long element_size,
                              void (*convert)(const float *src, long count, void *dst));

/* A buffer of at least `bytes` for the calling thread, grown as needed and kept (NULL if out of
   memory). */
void *eff_thread_buffer(long bytes);

/* One block of the convolution: 12 output pixels x 32 output channels from j0, their windows
   starting at `corner` in a padded band `width` pixels wide, into `target` (rows `ld` apart), of
   which `cols` columns are kept; `layer` is the kernel's own description of the layer. */
typedef void (*eff_small_input_block)(const void *corner, long width, long j0, float *target, long ld, long cols,
                                      const void *layer);

/* Output rows [row_begin, row_end) (row = image * oh + y) of a direct convolution with few input
   channels into out [n, oh, ow, n_out], band by band: the band's input rows are copied with their
   zero padding as `element_size`-byte values (`convert` writes them from floats), then `block`
   computes each block of 12 pixels x 32 channels (partial ones through a scratch tile). Returns
   0 if out of memory. */
static inline __attribute__((always_inline)) int eff_small_input_rows(
    const float *input, long h, long w, long cin, long k, long stride, long pad_top, long pad_left, long oh, long ow,
    long n_out, float *out, long row_begin, long row_end, long element_size,
    void (*convert)(const float *src, long count, void *dst), eff_small_input_block block, const void *layer) {
    float scratch[12 * 32];
    for (long row = row_begin; row < row_end;) {
        long first_row, rows, width;
        long band_end = eff_small_input_band(row, row_end, oh, ow, k, stride, pad_top, &first_row, &rows, &width);
        char *band = eff_thread_buffer(rows * width * cin * element_size);
        if (!band) return 0;
        eff_small_input_pad_band(input + (row / oh) * h * w * cin, h, w, cin, pad_left, first_row, rows, width, band,
                                 element_size, convert);
        for (; row < band_end; row++) {
            const char *top = band + ((row % oh) * stride - pad_top - first_row) * width * cin * element_size;
            for (long ox0 = 0; ox0 < ow; ox0 += 12) {
                long count = ow - ox0 < 12 ? ow - ox0 : 12;
                const char *corner = top + ox0 * stride * cin * element_size;
                for (long j0 = 0; j0 < n_out; j0 += 32) {
                    long cols = n_out - j0 < 32 ? n_out - j0 : 32;
                    int full = count == 12 && cols == 32;
                    block(corner, width, j0, full ? out + (row * ow + ox0) * n_out + j0 : scratch, full ? n_out : 32, cols,
                          layer);
                    if (!full)
                        for (long i = 0; i < count; i++)
                            memcpy(out + (row * ow + ox0 + i) * n_out + j0, scratch + i * 32, (size_t)cols * sizeof(float));
                }
            }
        }
    }
    return 1;
}

#endif
