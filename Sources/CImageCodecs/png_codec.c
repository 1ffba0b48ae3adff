#include "eff_codecs.h"

#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t pos;
    char *err;
    size_t err_len;
} png_reader_state;

static void set_err(char *err, size_t err_len, const char *msg) {
    if (err && err_len) {
        strncpy(err, msg, err_len - 1);
        err[err_len - 1] = 0;
    }
}

static void on_png_error(png_structp png, png_const_charp msg) {
    png_reader_state *st = (png_reader_state *)png_get_error_ptr(png);
    set_err(st->err, st->err_len, msg);
    png_longjmp(png, 1);
}

static void on_png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (bad ancillary chunks, ...) are not fatal, as in PIL */
}

static void read_from_memory(png_structp png, png_bytep out, png_size_t len) {
    png_reader_state *st = (png_reader_state *)png_get_io_ptr(png);
    if (len > st->size - st->pos) {
        png_error(png, "file is truncated");
    }
    memcpy(out, st->data + st->pos, len);
    st->pos += len;
}

/* Opens a reader and reads the header; returns 0 and leaves png/info set up, or an error. */
static int begin_read(png_reader_state *st, png_structp *png_out, png_infop *info_out) {
    if (st->size < 8 || png_sig_cmp(st->data, 0, 8) != 0) {
        set_err(st->err, st->err_len, "not a PNG file (bad signature)");
        return EFF_ERR_CORRUPT;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, st, on_png_error, on_png_warning);
    if (!png) {
        set_err(st->err, st->err_len, "out of memory");
        return EFF_ERR_NO_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        set_err(st->err, st->err_len, "out of memory");
        return EFF_ERR_NO_MEMORY;
    }
    /* Limits checked by libpng before it allocates: picture sides, the size of one ancillary
       chunk (text, ICC profile...), and how many ancillary chunks are kept. */
    png_set_user_limits(png, 1000000, 1000000);
    png_set_chunk_malloc_max(png, 8u << 20);
    png_set_chunk_cache_max(png, 1000);
    *png_out = png;
    *info_out = info;
    return EFF_OK;
}

int eff_png_read_header(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height,
                        char *err, size_t err_len) {
    png_reader_state st = {data, size, 0, err, err_len};
    png_structp png = NULL;
    png_infop info = NULL;
    int status = begin_read(&st, &png, &info);
    if (status != EFF_OK) return status;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return EFF_ERR_CORRUPT;
    }
    png_set_read_fn(png, &st, read_from_memory);
    png_read_info(png, info);
    *width = png_get_image_width(png, info);
    *height = png_get_image_height(png, info);
    png_destroy_read_struct(&png, &info, NULL);
    return EFF_OK;
}

/* Any colour type and depth to 8-bit RGB. */
static void set_rgb8_transforms(png_structp png, png_infop info) {
    int color_type = png_get_color_type(png, info);
    png_set_expand(png);    /* palette -> RGB, gray < 8 bit -> 8 bit, tRNS -> alpha */
    png_set_strip_16(png);  /* 16 -> 8 bit (high byte, as PIL) */
    png_set_strip_alpha(png);
    if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
        png_set_gray_to_rgb(png);
    }
}

/* Decodes into `out`: RGB (3 bytes a pixel, any colour type converted) or, when `indexed`, one
   byte a pixel (a palette PNG's indices or an 8-bit gray PNG's values; other types refused). */
static int decode_png(const uint8_t *data, size_t size, uint32_t width, uint32_t height, int indexed, uint8_t *out,
                      char *err, size_t err_len) {
    png_reader_state st = {data, size, 0, err, err_len};
    png_structp png = NULL;
    png_infop info = NULL;
    png_bytep *volatile rows = NULL;
    int status = begin_read(&st, &png, &info);
    if (status != EFF_OK) return status;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        return EFF_ERR_CORRUPT;
    }
    png_set_read_fn(png, &st, read_from_memory);
    png_read_info(png, info);
    if (png_get_image_width(png, info) != width || png_get_image_height(png, info) != height) {
        set_err(err, err_len, "image size differs from its header");
        png_destroy_read_struct(&png, &info, NULL);
        return EFF_ERR_SIZE_CHANGED;
    }
    int color_type = png_get_color_type(png, info);
    size_t channels = indexed ? 1 : 3;
    if (indexed) {
        if (color_type == PNG_COLOR_TYPE_PALETTE) {
            png_set_packing(png);   /* 1, 2, 4 bit indices -> one byte each, values kept */
        } else if (!(color_type == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) == 8)) {
            png_error(png, "not a class mask: a mask is a palette PNG or an 8-bit gray PNG of class indices");
        }
    } else {
        set_rgb8_transforms(png, info);
    }
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)width * channels) {
        png_error(png, "unexpected row layout after conversion");
    }
    rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    if (!rows) png_error(png, "out of memory");
    for (uint32_t y = 0; y < height; y++) rows[y] = out + (size_t)y * width * channels;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return EFF_OK;
}

/* ---- A PNG read from its file row by row (pictures too large to decode whole). ---- */

static void read_from_file(png_structp png, png_bytep out, png_size_t len) {
    FILE *file = (FILE *)png_get_io_ptr(png);
    if (fread(out, 1, len, file) != len) png_error(png, ferror(file) ? "read error" : "file is truncated");
}

struct eff_png_rows {
    png_structp png;
    png_infop info;
    FILE *file;
    png_reader_state st; /* only err / err_len are used (messages of the current call) */
};

eff_png_rows *eff_png_rows_open(const char *path, uint32_t *width, uint32_t *height, char *err, size_t err_len) {
    eff_png_rows *rows = (eff_png_rows *)calloc(1, sizeof *rows);
    if (!rows) {
        set_err(err, err_len, "out of memory");
        return NULL;
    }
    rows->st.err = err;
    rows->st.err_len = err_len;
    uint8_t signature[8];
    rows->file = fopen(path, "rb");
    if (!rows->file || fread(signature, 1, 8, rows->file) != 8 || png_sig_cmp(signature, 0, 8) != 0) {
        set_err(err, err_len, rows->file ? "not a PNG file (bad signature)" : "cannot open the file");
        if (rows->file) fclose(rows->file);
        free(rows);
        return NULL;
    }
    rows->st.data = signature;
    rows->st.size = 8;
    if (begin_read(&rows->st, &rows->png, &rows->info) != EFF_OK) {
        fclose(rows->file);
        free(rows);
        return NULL;
    }
    if (setjmp(png_jmpbuf(rows->png))) {
        png_destroy_read_struct(&rows->png, &rows->info, NULL);
        fclose(rows->file);
        free(rows);
        return NULL;
    }
    rows->st.data = NULL;
    png_set_read_fn(rows->png, rows->file, read_from_file);
    png_set_sig_bytes(rows->png, 8);
    png_read_info(rows->png, rows->info);
    if (png_get_interlace_type(rows->png, rows->info) != PNG_INTERLACE_NONE) {
        png_error(rows->png, "an interlaced PNG this large cannot be read row by row (save it without interlacing, or as a tiled TIFF)");
    }
    set_rgb8_transforms(rows->png, rows->info);
    png_read_update_info(rows->png, rows->info);
    *width = png_get_image_width(rows->png, rows->info);
    *height = png_get_image_height(rows->png, rows->info);
    if (png_get_rowbytes(rows->png, rows->info) != (size_t)*width * 3) {
        png_error(rows->png, "unexpected row layout after conversion");
    }
    return rows;
}

int eff_png_rows_read(eff_png_rows *rows, uint8_t *out, uint32_t count, char *err, size_t err_len) {
    rows->st.err = err;
    rows->st.err_len = err_len;
    uint32_t width = png_get_image_width(rows->png, rows->info);
    if (setjmp(png_jmpbuf(rows->png))) return EFF_ERR_CORRUPT;
    for (uint32_t i = 0; i < count; i++) {
        png_read_row(rows->png, out + (size_t)i * width * 3, NULL);
    }
    return EFF_OK;
}

void eff_png_rows_close(eff_png_rows *rows) {
    if (!rows) return;
    png_destroy_read_struct(&rows->png, &rows->info, NULL);
    fclose(rows->file);
    free(rows);
}

int eff_png_decode_rgb8(const uint8_t *data, size_t size, uint32_t width, uint32_t height,
                        uint8_t *out, char *err, size_t err_len) {
    return decode_png(data, size, width, height, 0, out, err, err_len);
}

int eff_png_decode_indexed(const uint8_t *data, size_t size, uint32_t width, uint32_t height,
                           uint8_t *out, char *err, size_t err_len) {
    return decode_png(data, size, width, height, 1, out, err, err_len);
}

typedef struct {
    uint8_t *buf;
    size_t size;
    size_t cap;
    char *err;
    size_t err_len;
} png_writer_state;

static void on_png_write_error(png_structp png, png_const_charp msg) {
    png_writer_state *st = (png_writer_state *)png_get_error_ptr(png);
    set_err(st->err, st->err_len, msg);
    png_longjmp(png, 1);
}

static void write_to_memory(png_structp png, png_bytep data, png_size_t len) {
    png_writer_state *st = (png_writer_state *)png_get_io_ptr(png);
    if (st->size + len > st->cap) {
        size_t cap = st->cap ? st->cap : 65536;
        while (cap < st->size + len) cap *= 2;
        uint8_t *grown = (uint8_t *)realloc(st->buf, cap);
        if (!grown) png_error(png, "out of memory");
        st->buf = grown;
        st->cap = cap;
    }
    memcpy(st->buf + st->size, data, len);
    st->size += len;
}

static void flush_memory(png_structp png) { (void)png; }

int eff_png_encode(const uint8_t *pixels, uint32_t width, uint32_t height, int color_type,
                   const uint8_t *palette, int palette_count, uint8_t **out, size_t *out_size,
                   char *err, size_t err_len) {
    int channels;
    switch (color_type) {
    case EFF_PNG_GRAY: channels = 1; break;
    case EFF_PNG_RGB: channels = 3; break;
    case EFF_PNG_RGBA: channels = 4; break;
    case EFF_PNG_PALETTE:
        channels = 1;
        if (!palette || palette_count < 1 || palette_count > 256) {
            set_err(err, err_len, "a palette PNG needs 1 to 256 colours");
            return EFF_ERR_CORRUPT;
        }
        break;
    default:
        set_err(err, err_len, "unsupported PNG colour type");
        return EFF_ERR_CORRUPT;
    }
    png_writer_state st = {NULL, 0, 0, err, err_len};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &st, on_png_write_error, on_png_warning);
    if (!png) {
        set_err(err, err_len, "out of memory");
        return EFF_ERR_NO_MEMORY;
    }
    png_infop info = png_create_info_struct(png);
    png_bytep *volatile rows = NULL;
    if (!info || setjmp(png_jmpbuf(png))) {
        free(rows);
        free(st.buf);
        png_destroy_write_struct(&png, &info);
        if (!info) set_err(err, err_len, "out of memory");
        return EFF_ERR_CORRUPT;
    }
    png_set_write_fn(png, &st, write_to_memory, flush_memory);
    png_set_IHDR(png, info, width, height, 8, color_type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (color_type == EFF_PNG_PALETTE) {
        png_color colours[256];
        for (int i = 0; i < palette_count; i++) {
            colours[i].red = palette[3 * i];
            colours[i].green = palette[3 * i + 1];
            colours[i].blue = palette[3 * i + 2];
        }
        png_set_PLTE(png, info, colours, palette_count);
    }
    png_set_compression_level(png, 3);
    png_write_info(png, info);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (height ? height : 1));
    if (!rows) png_error(png, "out of memory");
    for (uint32_t y = 0; y < height; y++) rows[y] = (png_bytep)pixels + (size_t)y * width * channels;
    png_write_image(png, rows);
    png_write_end(png, info);
    free(rows);
    png_destroy_write_struct(&png, &info);
    *out = st.buf;
    *out_size = st.size;
    return EFF_OK;
}

void eff_free(void *p) { free(p); }
