#include "eff_codecs.h"

#include <stdlib.h>
#include <string.h>

#include <stb_image.h>
#include <tiffio.h>
#include <webp/decode.h>

static void set_error(char *err, size_t err_len, const char *message) {
    if (!err || !err_len) return;
    strncpy(err, message ? message : "unknown error", err_len - 1);
    err[err_len - 1] = 0;
}

/* ---- BMP and GIF (first frame) through stb_image ------------------------------------------ */

int eff_stb_read_header(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height, char *err, size_t err_len) {
    int w = 0, h = 0, channels = 0;
    if (size > 0x7fffffff || !stbi_info_from_memory(data, (int)size, &w, &h, &channels) || w <= 0 || h <= 0) {
        set_error(err, err_len, stbi_failure_reason());
        return EFF_ERR_CORRUPT;
    }
    *width = (uint32_t)w;
    *height = (uint32_t)h;
    return EFF_OK;
}

int eff_stb_decode_rgb8(const uint8_t *data, size_t size, uint32_t width, uint32_t height, uint8_t *out, char *err, size_t err_len) {
    int w = 0, h = 0, channels = 0;
    if (size > 0x7fffffff) { set_error(err, err_len, "file too large"); return EFF_ERR_CORRUPT; }
    unsigned char *pixels = stbi_load_from_memory(data, (int)size, &w, &h, &channels, 3);
    if (!pixels) { set_error(err, err_len, stbi_failure_reason()); return EFF_ERR_CORRUPT; }
    if ((uint32_t)w != width || (uint32_t)h != height) {
        stbi_image_free(pixels);
        set_error(err, err_len, "image size differs from its header");
        return EFF_ERR_SIZE_CHANGED;
    }
    memcpy(out, pixels, (size_t)width * height * 3);
    stbi_image_free(pixels);
    return EFF_OK;
}

/* ---- WebP ----------------------------------------------------------------------------------- */

int eff_webp_read_header(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height, char *err, size_t err_len) {
    int w = 0, h = 0;
    if (!WebPGetInfo(data, size, &w, &h) || w <= 0 || h <= 0) { set_error(err, err_len, "not a readable WebP"); return EFF_ERR_CORRUPT; }
    *width = (uint32_t)w;
    *height = (uint32_t)h;
    return EFF_OK;
}

int eff_webp_decode_rgb8(const uint8_t *data, size_t size, uint32_t width, uint32_t height, uint8_t *out, char *err, size_t err_len) {
    size_t bytes = (size_t)width * height * 3;
    if (!WebPDecodeRGBInto(data, size, out, bytes, (int)width * 3)) {
        set_error(err, err_len, "the WebP data cannot be decoded (truncated or damaged)");
        return EFF_ERR_CORRUPT;
    }
    return EFF_OK;
}

/* ---- TIFF: libtiff reading from memory ------------------------------------------------------- */

typedef struct { const uint8_t *data; toff_t size, position; } memory_file;

static tmsize_t memory_read(thandle_t h, void *buffer, tmsize_t n) {
    memory_file *f = (memory_file *)h;
    if (n < 0 || f->position >= f->size) return 0;
    toff_t left = f->size - f->position;
    tmsize_t count = (toff_t)n < left ? n : (tmsize_t)left;
    memcpy(buffer, f->data + f->position, (size_t)count);
    f->position += (toff_t)count;
    return count;
}
static tmsize_t memory_write(thandle_t h, void *buffer, tmsize_t n) { (void)h; (void)buffer; (void)n; return -1; }
static toff_t memory_seek(thandle_t h, toff_t offset, int whence) {
    memory_file *f = (memory_file *)h;
    toff_t base = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? f->position : f->size;
    if (offset > (toff_t)-1 - base) return (toff_t)-1;
    f->position = base + offset;
    return f->position;
}
static int memory_close(thandle_t h) { (void)h; return 0; }
static toff_t memory_size(thandle_t h) { return ((memory_file *)h)->size; }
static int memory_map(thandle_t h, void **base, toff_t *size) { (void)h; (void)base; (void)size; return 0; }
static void memory_unmap(thandle_t h, void *base, toff_t size) { (void)h; (void)base; (void)size; }

/* libtiff reports through process-wide handlers: keep them quiet (errors come back as codes). */
static void quiet(const char *module, const char *fmt, va_list ap) { (void)module; (void)fmt; (void)ap; }

static TIFF *open_memory(memory_file *f) {
    TIFFSetErrorHandler(quiet);
    TIFFSetWarningHandler(quiet);
    return TIFFClientOpen("memory", "rm", (thandle_t)f, memory_read, memory_write, memory_seek, memory_close, memory_size,
                          memory_map, memory_unmap);
}

int eff_tiff_read_header(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height, char *err, size_t err_len) {
    memory_file f = {data, (toff_t)size, 0};
    TIFF *tif = open_memory(&f);
    if (!tif) { set_error(err, err_len, "not a readable TIFF"); return EFF_ERR_CORRUPT; }
    uint32_t w = 0, h = 0;
    int ok = TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) && TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h) && w > 0 && h > 0;
    TIFFClose(tif);
    if (!ok) { set_error(err, err_len, "the TIFF has no image size"); return EFF_ERR_CORRUPT; }
    *width = w;
    *height = h;
    return EFF_OK;
}

int eff_tiff_decode_rgb8(const uint8_t *data, size_t size, uint32_t width, uint32_t height, uint8_t *out, char *err, size_t err_len) {
    memory_file f = {data, (toff_t)size, 0};
    TIFF *tif = open_memory(&f);
    if (!tif) { set_error(err, err_len, "not a readable TIFF"); return EFF_ERR_CORRUPT; }
    uint32_t w = 0, h = 0;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    if (w != width || h != height) {
        TIFFClose(tif);
        set_error(err, err_len, "image size differs from its header");
        return EFF_ERR_SIZE_CHANGED;
    }
    uint32_t *raster = (uint32_t *)malloc((size_t)width * height * sizeof(uint32_t));
    if (!raster) { TIFFClose(tif); set_error(err, err_len, "out of memory"); return EFF_ERR_CORRUPT; }
    /* Any photometric / bit depth / compression libtiff knows, as RGBA, top row first. */
    int ok = TIFFReadRGBAImageOriented(tif, width, height, raster, ORIENTATION_TOPLEFT, 0);
    TIFFClose(tif);
    if (!ok) { free(raster); set_error(err, err_len, "the TIFF's pixels cannot be read (damaged or an unsupported sample format)"); return EFF_ERR_CORRUPT; }
    for (size_t i = 0; i < (size_t)width * height; i++) {
        out[3 * i] = (uint8_t)TIFFGetR(raster[i]);
        out[3 * i + 1] = (uint8_t)TIFFGetG(raster[i]);
        out[3 * i + 2] = (uint8_t)TIFFGetB(raster[i]);
    }
    free(raster);
    return EFF_OK;
}
