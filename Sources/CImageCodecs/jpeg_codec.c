#include "eff_codecs.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

typedef struct {
    struct jpeg_error_mgr base;
    jmp_buf jump;
    char *err;
    size_t err_len;
} jpeg_error_state;

static void record_message(j_common_ptr cinfo) {
    jpeg_error_state *st = (jpeg_error_state *)cinfo->err;
    char buffer[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buffer);
    if (st->err && st->err_len) {
        strncpy(st->err, buffer, st->err_len - 1);
        st->err[st->err_len - 1] = 0;
    }
}

static void on_jpeg_error(j_common_ptr cinfo) {
    jpeg_error_state *st = (jpeg_error_state *)cinfo->err;
    record_message(cinfo);
    longjmp(st->jump, 1);
}

/* libjpeg only warns when the data ends early and fills the rest with grey; a truncated file
   is an error here (as in PIL). Other warnings (extraneous bytes, ...) are ignored. */
static void on_jpeg_message(j_common_ptr cinfo, int level) {
    jpeg_error_state *st = (jpeg_error_state *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
        record_message(cinfo);
        if (st->err && st->err_len) {
            strncpy(st->err, "file is truncated (premature end of JPEG data)", st->err_len - 1);
            st->err[st->err_len - 1] = 0;
        }
        longjmp(st->jump, 1);
    }
}

/* A progressive JPEG can hold any number of scans, each re-decoding the whole picture: a small
   hostile file could keep the decoder busy for minutes. libjpeg-turbo's own tools stop at 500. */
#define EFF_JPEG_MAX_SCANS 500

static void limit_scans(j_common_ptr cinfo) {
    if (cinfo->is_decompressor) {
        j_decompress_ptr dinfo = (j_decompress_ptr)cinfo;
        if (dinfo->progressive_mode && dinfo->input_scan_number > EFF_JPEG_MAX_SCANS) {
            jpeg_error_state *st = (jpeg_error_state *)cinfo->err;
            if (st->err && st->err_len) {
                snprintf(st->err, st->err_len, "more than %d progressive scans", EFF_JPEG_MAX_SCANS);
            }
            longjmp(st->jump, 1);
        }
    }
}

/* Working memory libjpeg may allocate besides the output pixels (Huffman tables, coefficient
   buffers of progressive files, ...). */
#define EFF_JPEG_MAX_MEMORY (512L << 20)

/* Routes libjpeg's errors to `st` (a longjmp to st->jump, after setjmp by the caller) and its
   warnings to the message buffer. */
static void install_error_state(struct jpeg_decompress_struct *cinfo, jpeg_error_state *st, char *err, size_t err_len) {
    cinfo->err = jpeg_std_error(&st->base);
    st->base.error_exit = on_jpeg_error;
    st->base.emit_message = on_jpeg_message;
    st->err = err;
    st->err_len = err_len;
}

static int check_signature(const uint8_t *data, size_t size, char *err, size_t err_len) {
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8 || data[2] != 0xFF) {
        if (err && err_len) {
            strncpy(err, "not a JPEG file (bad signature)", err_len - 1);
            err[err_len - 1] = 0;
        }
        return EFF_ERR_CORRUPT;
    }
    return EFF_OK;
}

/* Adobe CMYK JPEGs store inverted values: R = C*K/255 on the stored bytes. */
static void cmyk_to_rgb(const uint8_t *src, uint8_t *dst, uint32_t width) {
    for (uint32_t x = 0; x < width; x++) {
        unsigned k = src[4 * x + 3];
        dst[3 * x] = (uint8_t)((src[4 * x] * k + 127) / 255);
        dst[3 * x + 1] = (uint8_t)((src[4 * x + 1] * k + 127) / 255);
        dst[3 * x + 2] = (uint8_t)((src[4 * x + 2] * k + 127) / 255);
    }
}

int eff_jpeg_read_header(const uint8_t *data, size_t size, uint32_t *width, uint32_t *height,
                         char *err, size_t err_len) {
    if (check_signature(data, size, err, err_len) != EFF_OK) return EFF_ERR_CORRUPT;
    struct jpeg_decompress_struct cinfo;
    jpeg_error_state st;
    install_error_state(&cinfo, &st, err, err_len);
    if (setjmp(st.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return EFF_ERR_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    *width = cinfo.image_width;
    *height = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    return EFF_OK;
}

int eff_jpeg_decode_rgb8(const uint8_t *data, size_t size, uint32_t width, uint32_t height,
                         uint8_t *out, char *err, size_t err_len) {
    if (check_signature(data, size, err, err_len) != EFF_OK) return EFF_ERR_CORRUPT;
    struct jpeg_decompress_struct cinfo;
    jpeg_error_state st;
    install_error_state(&cinfo, &st, err, err_len);
    if (setjmp(st.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return EFF_ERR_CORRUPT;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.mem->max_memory_to_use = EFF_JPEG_MAX_MEMORY;
    struct jpeg_progress_mgr progress = {.progress_monitor = limit_scans};
    cinfo.progress = &progress;
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_read_header(&cinfo, TRUE);
    if (cinfo.image_width != width || cinfo.image_height != height) {
        if (err && err_len) {
            strncpy(err, "image size differs from its header", err_len - 1);
            err[err_len - 1] = 0;
        }
        jpeg_destroy_decompress(&cinfo);
        return EFF_ERR_SIZE_CHANGED;
    }
    int cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
    cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    /* Match PIL's decoder settings (islow DCT, fancy upsampling) so pixels agree with it. */
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&cinfo);
    if (cmyk) {
        JSAMPARRAY row = (*cinfo.mem->alloc_sarray)((j_common_ptr)&cinfo, JPOOL_IMAGE, width * 4, 1);
        while (cinfo.output_scanline < cinfo.output_height) {
            size_t y = cinfo.output_scanline;
            jpeg_read_scanlines(&cinfo, row, 1);
            cmyk_to_rgb(row[0], out + y * width * 3, width);
        }
    } else {
        while (cinfo.output_scanline < cinfo.output_height) {
            JSAMPROW row = out + (size_t)cinfo.output_scanline * width * 3;
            jpeg_read_scanlines(&cinfo, &row, 1);
        }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    return EFF_OK;
}

/* ---- A JPEG read from its file row by row (pictures too large to decode whole). ---- */

struct eff_jpeg_rows {
    struct jpeg_decompress_struct cinfo;
    jpeg_error_state st;
    struct jpeg_progress_mgr progress;
    FILE *file;
    JSAMPARRAY cmyk_row; /* NULL unless the JPEG is CMYK / YCCK */
};

eff_jpeg_rows *eff_jpeg_rows_open(const char *path, uint32_t *width, uint32_t *height, char *err, size_t err_len) {
    eff_jpeg_rows *rows = (eff_jpeg_rows *)calloc(1, sizeof *rows);
    if (!rows) {
        if (err && err_len) snprintf(err, err_len, "out of memory");
        return NULL;
    }
    rows->file = fopen(path, "rb");
    if (!rows->file) {
        if (err && err_len) snprintf(err, err_len, "cannot open the file");
        free(rows);
        return NULL;
    }
    install_error_state(&rows->cinfo, &rows->st, err, err_len);
    if (setjmp(rows->st.jump)) {
        jpeg_destroy_decompress(&rows->cinfo);
        fclose(rows->file);
        free(rows);
        return NULL;
    }
    jpeg_create_decompress(&rows->cinfo);
    rows->cinfo.mem->max_memory_to_use = EFF_JPEG_MAX_MEMORY;
    rows->progress.progress_monitor = limit_scans;
    rows->cinfo.progress = &rows->progress;
    jpeg_stdio_src(&rows->cinfo, rows->file);
    jpeg_read_header(&rows->cinfo, TRUE);
    if (rows->cinfo.progressive_mode) {
        /* libjpeg keeps every coefficient of a progressive JPEG until its last scan. */
        if (err && err_len) snprintf(err, err_len, "a progressive JPEG this large cannot be read row by row (save it as baseline JPEG, or as a tiled TIFF)");
        longjmp(rows->st.jump, 1);
    }
    int cmyk = rows->cinfo.jpeg_color_space == JCS_CMYK || rows->cinfo.jpeg_color_space == JCS_YCCK;
    rows->cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;
    rows->cinfo.dct_method = JDCT_ISLOW;
    rows->cinfo.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&rows->cinfo);
    if (cmyk) {
        rows->cmyk_row = (*rows->cinfo.mem->alloc_sarray)((j_common_ptr)&rows->cinfo, JPOOL_IMAGE, rows->cinfo.output_width * 4, 1);
    }
    *width = rows->cinfo.output_width;
    *height = rows->cinfo.output_height;
    return rows;
}

int eff_jpeg_rows_read(eff_jpeg_rows *rows, uint8_t *out, uint32_t count, char *err, size_t err_len) {
    rows->st.err = err;
    rows->st.err_len = err_len;
    if (setjmp(rows->st.jump)) return EFF_ERR_CORRUPT;
    uint32_t width = rows->cinfo.output_width;
    for (uint32_t i = 0; i < count; i++) {
        if (rows->cinfo.output_scanline >= rows->cinfo.output_height) {
            if (err && err_len) snprintf(err, err_len, "no rows left");
            return EFF_ERR_CORRUPT;
        }
        uint8_t *dst = out + (size_t)i * width * 3;
        if (rows->cmyk_row) {
            jpeg_read_scanlines(&rows->cinfo, rows->cmyk_row, 1);
            cmyk_to_rgb(rows->cmyk_row[0], dst, width);
        } else {
            jpeg_read_scanlines(&rows->cinfo, &dst, 1);
        }
    }
    return EFF_OK;
}

void eff_jpeg_rows_close(eff_jpeg_rows *rows) {
    if (!rows) return;
    jpeg_destroy_decompress(&rows->cinfo); /* abort, not finish: the rows need not all be read */
    fclose(rows->file);
    free(rows);
}

/* The EXIF orientation tag (0x0112) of IFD0 in an APP1 "Exif\0\0" payload; 1 when absent. */
static int exif_orientation(const uint8_t *p, size_t n) {
    if (n < 14 || memcmp(p, "Exif\0\0", 6) != 0) return 1;
    p += 6;
    n -= 6;
    int little = p[0] == 'I' && p[1] == 'I';
    if (!little && !(p[0] == 'M' && p[1] == 'M')) return 1;
#define U16(o) (little ? (unsigned)(p[o] | p[(o) + 1] << 8) : (unsigned)(p[o] << 8 | p[(o) + 1]))
#define U32(o) (little ? ((uint32_t)p[o] | (uint32_t)p[(o) + 1] << 8 | (uint32_t)p[(o) + 2] << 16 | (uint32_t)p[(o) + 3] << 24) \
                       : ((uint32_t)p[o] << 24 | (uint32_t)p[(o) + 1] << 16 | (uint32_t)p[(o) + 2] << 8 | (uint32_t)p[(o) + 3]))
    if (U16(2) != 42) return 1;
    uint32_t ifd = U32(4);
    if (ifd > n || n - ifd < 2) return 1;
    unsigned count = U16(ifd);
    for (unsigned i = 0; i < count; i++) {
        size_t entry = (size_t)ifd + 2 + (size_t)i * 12;
        if (entry + 12 > n) return 1;
        if (U16(entry) == 0x0112 && U16(entry + 2) == 3) {
            unsigned value = U16(entry + 8);
            return value >= 1 && value <= 8 ? (int)value : 1;
        }
    }
    return 1;
#undef U16
#undef U32
}

int eff_jpeg_orientation(const uint8_t *data, size_t size) {
    char err[64];
    if (check_signature(data, size, err, sizeof err) != EFF_OK) return 1;
    struct jpeg_decompress_struct cinfo;
    jpeg_error_state st;
    install_error_state(&cinfo, &st, err, sizeof err);
    if (setjmp(st.jump)) {
        jpeg_destroy_decompress(&cinfo);
        return 1;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_mem_src(&cinfo, data, (unsigned long)size);
    jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(&cinfo, TRUE);
    int orientation = 1;
    for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1) {
            orientation = exif_orientation(m->data, m->data_length);
            if (orientation != 1) break;
        }
    }
    jpeg_destroy_decompress(&cinfo);
    return orientation;
}
