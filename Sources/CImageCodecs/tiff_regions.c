/* Large TIFFs region by region (reading) and tile by tile (writing), never whole: the reader
   decodes only the tiles or strips a region touches, through libtiff's RGBA interface (any
   compression, photometric and bit depth libtiff converts); the writer takes rows of 8-bit
   palette indices and writes deflate-compressed 256 x 256 tiles. libtiff's errors come back as
   return codes with a message. */
#include "eff_codecs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>

static void quiet_handler(const char *module, const char *fmt, va_list ap) { (void)module; (void)fmt; (void)ap; }

static void set_message(char *err, size_t err_len, const char *message) {
    if (err && err_len) { strncpy(err, message, err_len - 1); err[err_len - 1] = 0; }
}

struct eff_tiff_reader {
    TIFF *tif;
    uint32_t width, height, tile_width, tile_height, rows_per_strip;
    uint32_t *raster;           /* one tile or strip as RGBA */
    long cached;                /* the tile / strip in `raster`, -1 for none */
    uint32_t cached_rows;       /* rows of the cached strip */
};

/* The largest strip read at once: a TIFF stored in bigger strips is refused. */
#define MAX_STRIP_BYTES (256u << 20)

eff_tiff_reader *eff_tiff_reader_open(const char *path, char *err, size_t err_len) {
    TIFFSetErrorHandler(quiet_handler);
    TIFFSetWarningHandler(quiet_handler);
    TIFF *tif = TIFFOpen(path, "rm");
    if (!tif) { set_message(err, err_len, "not a readable TIFF"); return NULL; }
    /* A pyramid's full resolution: the largest top-level directory. */
    tdir_t best = 0;
    uint64_t best_pixels = 0;
    tdir_t index = 0;
    do {
        uint32_t w = 0, h = 0;
        if (TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) && TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h) &&
            (uint64_t)w * h > best_pixels) {
            best_pixels = (uint64_t)w * h;
            best = index;
        }
        index++;
    } while (index < 64 && TIFFReadDirectory(tif));
    if (best_pixels == 0 || !TIFFSetDirectory(tif, best)) {
        TIFFClose(tif);
        set_message(err, err_len, "the TIFF has no image size");
        return NULL;
    }
    eff_tiff_reader *r = (eff_tiff_reader *)calloc(1, sizeof *r);
    if (!r) { TIFFClose(tif); set_message(err, err_len, "out of memory"); return NULL; }
    r->tif = tif;
    r->cached = -1;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &r->width);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &r->height);
    char message[1024];
    if (!TIFFRGBAImageOK(tif, message)) {
        char text[1100];
        snprintf(text, sizeof text, "unsupported TIFF: %s", message);
        set_message(err, err_len, text);
        eff_tiff_reader_close(r);
        return NULL;
    }
    size_t cells;
    if (TIFFIsTiled(tif)) {
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &r->tile_width);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &r->tile_height);
        if (r->tile_width == 0 || r->tile_height == 0 || (uint64_t)r->tile_width * r->tile_height * 4 > MAX_STRIP_BYTES) {
            set_message(err, err_len, "the TIFF's tiles are empty or too large");
            eff_tiff_reader_close(r);
            return NULL;
        }
        cells = (size_t)r->tile_width * r->tile_height;
    } else {
        uint32_t rows = 0;
        if (!TIFFGetField(tif, TIFFTAG_ROWSPERSTRIP, &rows) || rows > r->height) rows = r->height;
        r->rows_per_strip = rows ? rows : 1;
        if ((uint64_t)r->width * r->rows_per_strip * 4 > MAX_STRIP_BYTES) {
            set_message(err, err_len, "the TIFF is stored in strips too large to read region by region (re-save it tiled, e.g. vips tiffsave --tile)");
            eff_tiff_reader_close(r);
            return NULL;
        }
        cells = (size_t)r->width * r->rows_per_strip;
    }
    r->raster = (uint32_t *)malloc(cells * sizeof(uint32_t));
    if (!r->raster) { set_message(err, err_len, "out of memory"); eff_tiff_reader_close(r); return NULL; }
    return r;
}

void eff_tiff_reader_close(eff_tiff_reader *r) {
    if (!r) return;
    if (r->tif) TIFFClose(r->tif);
    free(r->raster);
    free(r);
}

void eff_tiff_reader_size(const eff_tiff_reader *r, uint32_t *width, uint32_t *height, uint32_t *tile_width, uint32_t *tile_height) {
    *width = r->width;
    *height = r->height;
    *tile_width = r->tile_width;
    *tile_height = r->tile_height;
}

static void copy_rgb(uint8_t *dst, const uint32_t *src, uint32_t count) {
    for (uint32_t i = 0; i < count; i++) {
        dst[3 * i] = (uint8_t)TIFFGetR(src[i]);
        dst[3 * i + 1] = (uint8_t)TIFFGetG(src[i]);
        dst[3 * i + 2] = (uint8_t)TIFFGetB(src[i]);
    }
}

int eff_tiff_reader_read(eff_tiff_reader *r, uint32_t x, uint32_t y, uint32_t w, uint32_t h, uint8_t *out, char *err, size_t err_len) {
    if (w == 0 || h == 0 || x > r->width || y > r->height || w > r->width - x || h > r->height - y) {
        set_message(err, err_len, "region outside the picture");
        return EFF_ERR_CORRUPT;
    }
    if (r->tile_width) {
        uint32_t tw = r->tile_width, th = r->tile_height;
        for (uint32_t ty = y / th * th; ty < y + h; ty += th) {
            for (uint32_t tx = x / tw * tw; tx < x + w; tx += tw) {
                long key = (long)TIFFComputeTile(r->tif, tx, ty, 0, 0);
                if (key != r->cached) {
                    if (!TIFFReadRGBATile(r->tif, tx, ty, r->raster)) {
                        r->cached = -1;
                        set_message(err, err_len, "a tile of the TIFF cannot be read (damaged or truncated)");
                        return EFF_ERR_CORRUPT;
                    }
                    r->cached = key;
                }
                /* The tile comes bottom row first: its row i (from the top) is raster row th - 1 - i. */
                uint32_t y0 = ty > y ? ty : y, y1 = ty + th < y + h ? ty + th : y + h;
                uint32_t x0 = tx > x ? tx : x, x1 = tx + tw < x + w ? tx + tw : x + w;
                for (uint32_t row = y0; row < y1; row++) {
                    const uint32_t *src = r->raster + (size_t)(th - 1 - (row - ty)) * tw + (x0 - tx);
                    copy_rgb(out + ((size_t)(row - y) * w + (x0 - x)) * 3, src, x1 - x0);
                }
            }
        }
    } else {
        uint32_t rps = r->rows_per_strip;
        for (uint32_t sy = y / rps * rps; sy < y + h; sy += rps) {
            long key = (long)(sy / rps);
            uint32_t rows = sy + rps <= r->height ? rps : r->height - sy;
            if (key != r->cached) {
                if (!TIFFReadRGBAStrip(r->tif, sy, r->raster)) {
                    r->cached = -1;
                    set_message(err, err_len, "a strip of the TIFF cannot be read (damaged or truncated)");
                    return EFF_ERR_CORRUPT;
                }
                r->cached = key;
                r->cached_rows = rows;
            }
            /* The strip comes bottom row first. */
            uint32_t y0 = sy > y ? sy : y, y1 = sy + rows < y + h ? sy + rows : y + h;
            for (uint32_t row = y0; row < y1; row++) {
                const uint32_t *src = r->raster + (size_t)(rows - 1 - (row - sy)) * r->width + x;
                copy_rgb(out + (size_t)(row - y) * w * 3, src, w);
            }
        }
    }
    return EFF_OK;
}

/* ---- writing a palette mask as tiles ------------------------------------------------------- */

#define WRITE_TILE 256

struct eff_tiff_mask_writer {
    TIFF *tif;
    uint32_t width, height, rows_done, buffered;
    uint8_t *band;        /* WRITE_TILE rows of the padded width */
    uint8_t *tile;
    uint32_t padded_width;
};

eff_tiff_mask_writer *eff_tiff_mask_writer_open(const char *path, uint32_t width, uint32_t height, const uint8_t *palette_rgb,
                                                int colours, char *err, size_t err_len) {
    TIFFSetErrorHandler(quiet_handler);
    TIFFSetWarningHandler(quiet_handler);
    int big = (uint64_t)width * height > (3ull << 30);   /* classic TIFF offsets end at 4 GB */
    TIFF *tif = TIFFOpen(path, big ? "w8" : "w");
    if (!tif) { set_message(err, err_len, "cannot create the TIFF"); return NULL; }
    uint16_t map[3][256];
    for (int i = 0; i < 256; i++) {
        int c = i < colours ? i : 0;
        map[0][i] = (uint16_t)(palette_rgb[3 * c] * 257);
        map[1][i] = (uint16_t)(palette_rgb[3 * c + 1] * 257);
        map[2][i] = (uint16_t)(palette_rgb[3 * c + 2] * 257);
    }
    int ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, width) && TIFFSetField(tif, TIFFTAG_IMAGELENGTH, height) &&
             TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8) && TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1) &&
             TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_PALETTE) &&
             TIFFSetField(tif, TIFFTAG_COLORMAP, map[0], map[1], map[2]) &&
             TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
             TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE) &&
             TIFFSetField(tif, TIFFTAG_TILEWIDTH, WRITE_TILE) && TIFFSetField(tif, TIFFTAG_TILELENGTH, WRITE_TILE);
    if (!ok) { TIFFClose(tif); set_message(err, err_len, "cannot set up the TIFF"); return NULL; }
    eff_tiff_mask_writer *w = (eff_tiff_mask_writer *)calloc(1, sizeof *w);
    if (!w) { TIFFClose(tif); set_message(err, err_len, "out of memory"); return NULL; }
    w->tif = tif;
    w->width = width;
    w->height = height;
    w->padded_width = (width + WRITE_TILE - 1) / WRITE_TILE * WRITE_TILE;
    w->band = (uint8_t *)calloc((size_t)w->padded_width * WRITE_TILE, 1);
    w->tile = (uint8_t *)malloc(WRITE_TILE * WRITE_TILE);
    if (!w->band || !w->tile) { eff_tiff_mask_writer_close(w, 1, err, err_len); set_message(err, err_len, "out of memory"); return NULL; }
    return w;
}

static int flush_band(eff_tiff_mask_writer *w, char *err, size_t err_len) {
    uint32_t top = w->rows_done;
    for (uint32_t tx = 0; tx < w->padded_width; tx += WRITE_TILE) {
        for (uint32_t row = 0; row < WRITE_TILE; row++) memcpy(w->tile + row * WRITE_TILE, w->band + (size_t)row * w->padded_width + tx, WRITE_TILE);
        if (TIFFWriteTile(w->tif, w->tile, tx, top, 0, 0) < 0) {
            set_message(err, err_len, "cannot write a tile (disk full?)");
            return EFF_ERR_CORRUPT;
        }
    }
    w->rows_done += WRITE_TILE;
    w->buffered = 0;
    memset(w->band, 0, (size_t)w->padded_width * WRITE_TILE);
    return EFF_OK;
}

int eff_tiff_mask_writer_add_rows(eff_tiff_mask_writer *w, const uint8_t *rows, uint32_t count, char *err, size_t err_len) {
    for (uint32_t i = 0; i < count; i++) {
        if (w->rows_done + w->buffered >= w->height) { set_message(err, err_len, "more rows than the picture has"); return EFF_ERR_CORRUPT; }
        memcpy(w->band + (size_t)w->buffered * w->padded_width, rows + (size_t)i * w->width, w->width);
        w->buffered++;
        if (w->buffered == WRITE_TILE) {
            int status = flush_band(w, err, err_len);
            if (status != EFF_OK) return status;
        }
    }
    return EFF_OK;
}

int eff_tiff_mask_writer_close(eff_tiff_mask_writer *w, int abandon, char *err, size_t err_len) {
    int status = EFF_OK;
    if (!abandon && w->buffered > 0) status = flush_band(w, err, err_len);
    if (!abandon && status == EFF_OK && w->rows_done < w->height) {
        set_message(err, err_len, "fewer rows than the picture has");
        status = EFF_ERR_CORRUPT;
    }
    if (w->tif) TIFFClose(w->tif);
    free(w->band);
    free(w->tile);
    free(w);
    return status;
}
