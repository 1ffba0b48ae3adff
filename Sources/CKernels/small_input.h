/* The band-by-band padding shared by the float32 (kernels.c) and bf16 (gemm_bf16.c) direct
   convolutions with few input channels. Internal to CKernels. */
#ifndef EFF_SMALL_INPUT_H
#define EFF_SMALL_INPUT_H

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

#endif
