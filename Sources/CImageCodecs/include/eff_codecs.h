#ifndef EFF_CODECS_H
#define EFF_CODECS_H

#include <stddef.h>
#include <stdint.h>

/* Thin wrappers over libpng and libjpeg. Every libpng/libjpeg error (a longjmp inside the
   library) is caught here and returned as a non-zero status with a message in `err`, so the
   Swift side never sees a longjmp. Decoding is two-phase: read the header (cheap, no pixel
   allocation), let the caller check the size against its limit and allocate, then decode
   into the caller's buffer. Decoded pixels are always 8-bit RGB, row-major, no padding. */

#define EFF_OK 0
#define EFF_ERR_CORRUPT 1
#define EFF_ERR_SIZE_CHANGED 2
#define EFF_ERR_NO_MEMORY 3

/* PNG: reads the IHDR. */
int eff_png_read_header(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height,
                        char *err, size_t err_len);
/* PNG: decodes any colour type / bit depth to 8-bit RGB (palette and low-bit gray expanded,
   16-bit reduced to 8, gray replicated, alpha dropped). `out` holds width*height*3 bytes. */
int eff_png_decode_rgb8(const uint8_t *data, size_t size, uint32_t width, uint32_t height,
                        uint8_t *out, char *err, size_t err_len);

/* PNG: decodes a class mask — a palette PNG's indices (1, 2, 4 or 8 bit) or an 8-bit gray
   PNG's values, one byte a pixel, into `out` (width*height bytes). Other colour types are
   refused (EFF_ERR_CORRUPT with a message): a colour picture is not a mask. */
int eff_png_decode_indexed(const uint8_t *data, size_t size, uint32_t width, uint32_t height,
                           uint8_t *out, char *err, size_t err_len);

/* PNG colour types for encoding (libpng's values). */
#define EFF_PNG_GRAY 0
#define EFF_PNG_RGB 2
#define EFF_PNG_PALETTE 3
#define EFF_PNG_RGBA 6

/* Encodes 8-bit pixels (1, 3, 4 or 1 byte per pixel for gray, RGB, RGBA, palette) to a PNG in
   memory. `palette` is `palette_count` RGB triples (palette type only). On success `*out` is a
   malloc'd buffer the caller frees with eff_free. */
int eff_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int color_type,
                   const uint8_t *palette, int palette_count, uint8_t **out, size_t *out_size,
                   char *err, size_t err_len);

/* JPEG: reads the SOF header. */
int eff_jpeg_read_header(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height,
                         char *err, size_t err_len);
/* JPEG: decodes gray, YCbCr, RGB, CMYK and YCCK to 8-bit RGB. A file that ends before its
   image data does is an error (libjpeg only warns). */
int eff_jpeg_decode_rgb8(const uint8_t *data, size_t size, uint32_t width, uint32_t height,
                         uint8_t *out, char *err, size_t err_len);

/* JPEG: the EXIF orientation (1..8, TIFF's meaning) of the first APP1 Exif segment; 1 when
   there is none or it cannot be read. */
int eff_jpeg_orientation(const uint8_t *data, size_t size);

/* BMP and GIF (first frame) through stb_image; WebP through libwebp; TIFF (any layout libtiff
   reads, first directory) through libtiff. Same contract as the PNG / JPEG pairs. */
int eff_stb_read_header(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height, char *err, size_t err_len);
int eff_stb_decode_rgb8(const uint8_t *data, size_t size, uint32_t width, uint32_t height, uint8_t *out, char *err, size_t err_len);
int eff_webp_read_header(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height, char *err, size_t err_len);
int eff_webp_decode_rgb8(const uint8_t *data, size_t size, uint32_t width, uint32_t height, uint8_t *out, char *err, size_t err_len);
int eff_tiff_read_header(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height, char *err, size_t err_len);
int eff_tiff_decode_rgb8(const uint8_t *data, size_t size, uint32_t width, uint32_t height, uint8_t *out, char *err, size_t err_len);

void eff_free(void *p);

/* PNG and JPEG pictures too large to decode whole, read from their files top to bottom as 8-bit
   RGB rows (width*3 bytes each). Interlaced PNGs and progressive JPEGs cannot be read so and are
   refused at open. After a read error the reader may only be closed. */
typedef struct eff_png_rows eff_png_rows;
eff_png_rows *eff_png_rows_open(const char *path, uint32_t *width, uint32_t *height, char *err, size_t err_len);
int eff_png_rows_read(eff_png_rows *rows, uint8_t *out, uint32_t count, char *err, size_t err_len);
void eff_png_rows_close(eff_png_rows *rows);
typedef struct eff_jpeg_rows eff_jpeg_rows;
eff_jpeg_rows *eff_jpeg_rows_open(const char *path, uint32_t *width, uint32_t *height, char *err, size_t err_len);
int eff_jpeg_rows_read(eff_jpeg_rows *rows, uint8_t *out, uint32_t count, char *err, size_t err_len);
void eff_jpeg_rows_close(eff_jpeg_rows *rows);

/* Large TIFFs read region by region: the pyramid's full-resolution directory, tiles or strips
   decoded as a region needs them (one cached). Strips over 256 MB are refused. */
typedef struct eff_tiff_reader eff_tiff_reader;
eff_tiff_reader *eff_tiff_reader_open(const char *path, char *err, size_t err_len);
void eff_tiff_reader_close(eff_tiff_reader *reader);
/* Picture size, and its tile size (0 x 0 for a striped TIFF). */
void eff_tiff_reader_size(const eff_tiff_reader *reader, uint32_t *width, uint32_t *height, uint32_t *tile_width,
                          uint32_t *tile_height);
/* The region x..x+w, y..y+h as 8-bit RGB (w*h*3 bytes). */
int eff_tiff_reader_read(eff_tiff_reader *reader, uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint8_t *out,
                         char *err, size_t err_len);

/* A palette mask written as deflate-compressed 256 x 256 tiles (BigTIFF past 3 GB), rows given
   top to bottom, `colours` RGB triples in `palette_rgb`. */
typedef struct eff_tiff_mask_writer eff_tiff_mask_writer;
eff_tiff_mask_writer *eff_tiff_mask_writer_open(const char *path, uint32_t width, uint32_t height,
                                                const uint8_t *palette_rgb, int colours, char *err, size_t err_len);
int eff_tiff_mask_writer_add_rows(eff_tiff_mask_writer *writer, const uint8_t *rows, uint32_t count, char *err,
                                  size_t err_len);
/* Finishes the file (abandon: just closes it, for the caller to remove). Frees the writer. */
int eff_tiff_mask_writer_close(eff_tiff_mask_writer *writer, int abandon, char *err, size_t err_len);

#endif
