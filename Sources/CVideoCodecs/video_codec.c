#include "eff_video.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <math.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- FFmpeg's log: kept quiet, its last error line kept for our messages ---- */

static _Thread_local char last_log_line[200];

static void quiet_log(void *context, int level, const char *format, va_list arguments) {
    (void)context;
    if (level > AV_LOG_ERROR) return;
    char line[sizeof last_log_line];
    vsnprintf(line, sizeof line, format, arguments);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
    if (n > 0) memcpy(last_log_line, line, n + 1);
}

static pthread_once_t logging_once = PTHREAD_ONCE_INIT;
static void install_logging(void) {
    av_log_set_level(AV_LOG_ERROR);
    av_log_set_callback(quiet_log);
}
static void start(void) {
    pthread_once(&logging_once, install_logging);
    last_log_line[0] = 0;
}

/* "what: FFmpeg's reason (its last logged line)" into err. */
static int fail(char *err, size_t err_len, const char *what, int code) {
    char reason[AV_ERROR_MAX_STRING_SIZE] = "";
    if (code < 0) av_strerror(code, reason, sizeof reason);
    if (last_log_line[0] && strcmp(last_log_line, reason) != 0) {
        snprintf(err, err_len, "%s%s%s (%s)", what, reason[0] ? ": " : "", reason, last_log_line);
    } else {
        snprintf(err, err_len, "%s%s%s", what, reason[0] ? ": " : "", reason);
    }
    last_log_line[0] = 0;
    return EFF_VIDEO_ERROR;
}

/* ---- recognising videos ---- */

int eff_video_probe(const uint8_t *head, size_t size) {
    start();
    if (size == 0 || size > (1 << 20)) return 0;
    uint8_t *buffer = calloc(size + AVPROBE_PADDING_SIZE, 1);
    if (!buffer) return 0;
    memcpy(buffer, head, size);
    AVProbeData probe = {.filename = "", .buf = buffer, .buf_size = (int)size, .mime_type = NULL};
    int score = 0;
    const AVInputFormat *format = av_probe_input_format3(&probe, 1, &score);
    free(buffer);
    if (!format || score < AVPROBE_SCORE_EXTENSION) return 0;
    const char *name = format->name;
    if (strstr(name, "_pipe") || strstr(name, "image2") || strcmp(name, "tty") == 0) return 0;
    return 1;
}

int eff_video_has_several_frames(const char *path) {
    start();
    AVFormatContext *format = NULL;
    if (avformat_open_input(&format, path, NULL, NULL) < 0) return 0;
    int frames = 0;
    int stream = av_find_best_stream(format, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    AVPacket *packet = av_packet_alloc();
    while (stream >= 0 && packet && frames < 2 && av_read_frame(format, packet) >= 0) {
        if (packet->stream_index == stream) frames++;
        av_packet_unref(packet);
    }
    av_packet_free(&packet);
    avformat_close_input(&format);
    return frames >= 2;
}

/* ---- reading ---- */

struct eff_video_reader {
    AVFormatContext *format;
    AVCodecContext *decoder;
    int stream;
    AVPacket *packet;
    AVFrame *frame;
    struct SwsContext *scaler;
    int width, height;
    AVRational time_base;
    int64_t start_time;
    double fps;
    int64_t next_index;
    int input_ended;
};

int eff_video_open(const char *path, int64_t max_pixels, eff_video_reader **out, eff_video_info *info, char *err, size_t err_len) {
    start();
    *out = NULL;
    memset(info, 0, sizeof *info);
    eff_video_reader *r = calloc(1, sizeof *r);
    if (!r) return fail(err, err_len, "out of memory", 0);
    int code = avformat_open_input(&r->format, path, NULL, NULL);
    if (code < 0) { free(r); return fail(err, err_len, "cannot read the video", code); }
    code = avformat_find_stream_info(r->format, NULL);
    if (code < 0) { eff_video_close(r); return fail(err, err_len, "cannot read the video's streams", code); }
    const AVCodec *codec = NULL;
    r->stream = av_find_best_stream(r->format, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (r->stream == AVERROR_STREAM_NOT_FOUND) {
        eff_video_close(r);
        snprintf(err, err_len, "no video stream in it (only audio, subtitles or data)");
        return EFF_VIDEO_ERROR;
    }
    AVStream *stream = r->stream >= 0 ? r->format->streams[r->stream] : NULL;
    if (r->stream == AVERROR_DECODER_NOT_FOUND || (stream && !codec)) {
        int index = av_find_best_stream(r->format, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        enum AVCodecID id = index >= 0 ? r->format->streams[index]->codecpar->codec_id : AV_CODEC_ID_NONE;
        if (id == AV_CODEC_ID_NONE) {
            snprintf(err, err_len, "its video codec is not one this system's FFmpeg knows (no decoder)");
        } else {
            snprintf(err, err_len, "its video codec (%s) has no decoder in this system's FFmpeg", avcodec_get_name(id));
        }
        eff_video_close(r);
        return EFF_VIDEO_ERROR;
    }
    if (!stream) { eff_video_close(r); return fail(err, err_len, "cannot choose a video stream", r->stream); }
    AVCodecParameters *parameters = stream->codecpar;
    if (parameters->width <= 0 || parameters->height <= 0) {
        eff_video_close(r);
        snprintf(err, err_len, "its video stream has no frame size (no frames?)");
        return EFF_VIDEO_ERROR;
    }
    if ((int64_t)parameters->width * parameters->height > max_pixels) {
        snprintf(err, err_len, "frames of %d x %d are over the limit of %lld pixels", parameters->width, parameters->height,
                 (long long)max_pixels);
        eff_video_close(r);
        return EFF_VIDEO_ERROR;
    }
    r->decoder = avcodec_alloc_context3(codec);
    if (!r->decoder) { eff_video_close(r); return fail(err, err_len, "out of memory", 0); }
    code = avcodec_parameters_to_context(r->decoder, parameters);
    if (code >= 0) {
        /* Decoding runs on its own thread, ahead of the network: one thread is enough. */
        r->decoder->thread_count = 1;
        code = avcodec_open2(r->decoder, codec, NULL);
    }
    if (code < 0) { eff_video_close(r); return fail(err, err_len, "cannot start the video decoder", code); }
    r->packet = av_packet_alloc();
    r->frame = av_frame_alloc();
    if (!r->packet || !r->frame) { eff_video_close(r); return fail(err, err_len, "out of memory", 0); }
    r->width = parameters->width;
    r->height = parameters->height;
    r->time_base = stream->time_base;
    r->start_time = stream->start_time != AV_NOPTS_VALUE ? stream->start_time : 0;
    AVRational rate = stream->avg_frame_rate.num > 0 && stream->avg_frame_rate.den > 0 ? stream->avg_frame_rate : stream->r_frame_rate;
    if (rate.num <= 0 || rate.den <= 0) rate = (AVRational){25, 1};
    av_reduce(&rate.num, &rate.den, rate.num, rate.den, 1 << 30);
    r->fps = av_q2d(rate);
    info->width = r->width;
    info->height = r->height;
    info->fps_num = rate.num;
    info->fps_den = rate.den;
    info->declared_frames = stream->nb_frames > 0 ? stream->nb_frames : -1;
    info->duration = stream->duration != AV_NOPTS_VALUE ? stream->duration * av_q2d(stream->time_base)
                   : r->format->duration != AV_NOPTS_VALUE ? r->format->duration / (double)AV_TIME_BASE : -1;
    /* As cmdutils' get_rotation: the display matrix's counter-clockwise angle, negated and
       brought into [0, 360); only quarter turns are applied (mirrored matrices are not). */
    const uint8_t *matrix = av_stream_get_side_data(stream, AV_PKT_DATA_DISPLAYMATRIX, NULL);
    if (matrix) {
        double theta = -round(av_display_rotation_get((const int32_t *)matrix));
        theta -= 360 * floor(theta / 360 + 0.9 / 360);
        info->rotation = fabs(theta - 90) < 1 ? 90 : fabs(theta - 180) < 1 ? 180 : fabs(theta - 270) < 1 ? 270 : 0;
    }
    snprintf(info->codec, sizeof info->codec, "%s", codec->name);
    snprintf(info->container, sizeof info->container, "%s", r->format->iformat->name);
    *out = r;
    return 0;
}

/* The decoded frame as RGB at the stream's size, converted as FFmpeg's scale filter does by
   default (bicubic; the frame's own colour matrix and range). */
static int convert(eff_video_reader *r, uint8_t *rgb, char *err, size_t err_len) {
    AVFrame *f = r->frame;
    r->scaler = sws_getCachedContext(r->scaler, f->width, f->height, f->format, r->width, r->height, AV_PIX_FMT_RGB24,
                                     SWS_BICUBIC, NULL, NULL, NULL);
    if (!r->scaler) return fail(err, err_len, "cannot convert the frames' pixel format to RGB", 0);
    if (f->colorspace != AVCOL_SPC_UNSPECIFIED || f->color_range != AVCOL_RANGE_UNSPECIFIED) {
        int *inverse = NULL, *table = NULL, source_full = 0, destination_full = 0, brightness = 0, contrast = 0, saturation = 0;
        if (sws_getColorspaceDetails(r->scaler, &inverse, &source_full, &table, &destination_full, &brightness, &contrast, &saturation) >= 0) {
            const int *matrix = sws_getCoefficients(f->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : (int)f->colorspace);
            if (f->color_range != AVCOL_RANGE_UNSPECIFIED) source_full = f->color_range == AVCOL_RANGE_JPEG;
            sws_setColorspaceDetails(r->scaler, matrix, source_full, table, destination_full, brightness, contrast, saturation);
        }
    }
    uint8_t *planes[4] = {rgb, NULL, NULL, NULL};
    int strides[4] = {r->width * 3, 0, 0, 0};
    if (sws_scale(r->scaler, (const uint8_t *const *)f->data, f->linesize, 0, f->height, planes, strides) <= 0) {
        return fail(err, err_len, "cannot convert a frame to RGB", 0);
    }
    return 0;
}

int eff_video_read(eff_video_reader *r, uint8_t *rgb, int64_t *index, double *time_s, char *err, size_t err_len) {
    last_log_line[0] = 0;
    for (;;) {
        int code = avcodec_receive_frame(r->decoder, r->frame);
        if (code == 0) {
            *index = r->next_index++;
            int64_t ts = r->frame->best_effort_timestamp;
            *time_s = ts != AV_NOPTS_VALUE ? (ts - r->start_time) * av_q2d(r->time_base) : *index / r->fps;
            int corrupt = (r->frame->flags & AV_FRAME_FLAG_CORRUPT) || r->frame->decode_error_flags;
            if (corrupt || r->frame->width <= 0 || r->frame->height <= 0) {
                av_frame_unref(r->frame);
                fail(err, err_len, "the frame is corrupt", 0);
                return EFF_VIDEO_CORRUPT_FRAME;
            }
            code = convert(r, rgb, err, err_len);
            av_frame_unref(r->frame);
            return code == 0 ? EFF_VIDEO_FRAME : EFF_VIDEO_ERROR;
        }
        if (code == AVERROR_EOF) return EFF_VIDEO_END;
        if (code != AVERROR(EAGAIN)) {
            *index = r->next_index++;
            *time_s = *index / r->fps;
            fail(err, err_len, "the frame cannot be decoded", code);
            return EFF_VIDEO_CORRUPT_FRAME;
        }
        if (r->input_ended) return EFF_VIDEO_END;
        code = av_read_frame(r->format, r->packet);
        if (code == AVERROR_EOF) {
            r->input_ended = 1;
            avcodec_send_packet(r->decoder, NULL);
            continue;
        }
        if (code < 0) return fail(err, err_len, "reading the video stopped", code);
        if (r->packet->stream_index != r->stream) {
            av_packet_unref(r->packet);
            continue;
        }
        code = avcodec_send_packet(r->decoder, r->packet);
        av_packet_unref(r->packet);
        if (code < 0 && code != AVERROR(EAGAIN)) {
            *index = r->next_index++;
            *time_s = *index / r->fps;
            fail(err, err_len, "the frame cannot be decoded", code);
            return EFF_VIDEO_CORRUPT_FRAME;
        }
    }
}

void eff_video_close(eff_video_reader *r) {
    if (!r) return;
    sws_freeContext(r->scaler);
    av_frame_free(&r->frame);
    av_packet_free(&r->packet);
    avcodec_free_context(&r->decoder);
    avformat_close_input(&r->format);
    free(r);
}

/* ---- writing ---- */

struct eff_video_writer {
    AVFormatContext *format;
    AVCodecContext *encoder;
    AVStream *stream;
    AVFrame *frame;
    AVPacket *packet;
    struct SwsContext *scaler;
    int width, height, kind;
    int64_t next_pts;
};

static int supports(const AVCodec *codec, enum AVPixelFormat format) {
    if (!codec->pix_fmts) return format == AV_PIX_FMT_YUV420P;
    for (const enum AVPixelFormat *p = codec->pix_fmts; *p != AV_PIX_FMT_NONE; p++) if (*p == format) return 1;
    return 0;
}

static int fits(const AVOutputFormat *container, enum AVCodecID id) {
    int answer = avformat_query_codec(container, id, FF_COMPLIANCE_NORMAL);
    return answer == 1 || (answer < 0 && id == container->video_codec);
}

int eff_video_writer_open(const char *path, const char *format_name_path, int width, int height, int fps_num, int fps_den,
                          int kind, eff_video_writer **out, char *codec_name, size_t codec_len, char *err, size_t err_len) {
    start();
    *out = NULL;
    const AVOutputFormat *container = av_guess_format(NULL, format_name_path, NULL);
    if (!container || (container->flags & AVFMT_NOFILE) || strstr(container->name, "image2") || container->video_codec == AV_CODEC_ID_NONE) {
        snprintf(err, err_len, "its name does not say a video container FFmpeg writes (use .mp4, .mkv, .mov, .avi or .webm)");
        return EFF_VIDEO_ERROR;
    }
    const AVCodec *codec = NULL;
    if (kind == EFF_VIDEO_LOSSLESS_GRAY) {
        if (fits(container, AV_CODEC_ID_FFV1)) codec = avcodec_find_encoder(AV_CODEC_ID_FFV1);
        if (!codec) {
            snprintf(err, err_len, "a mask video is lossless FFV1, which a .%s container does not hold: name it .mkv",
                     container->extensions ? container->extensions : container->name);
            return EFF_VIDEO_ERROR;
        }
    } else {
        enum AVCodecID choices[] = {AV_CODEC_ID_H264, AV_CODEC_ID_MPEG4, container->video_codec};
        for (int i = 0; i < 3 && !codec; i++) {
            if (fits(container, choices[i])) codec = avcodec_find_encoder(choices[i]);
        }
        if (!codec) {
            snprintf(err, err_len, "this system's FFmpeg has no encoder for a .%s container", container->extensions ? container->extensions : container->name);
            return EFF_VIDEO_ERROR;
        }
    }
    eff_video_writer *w = calloc(1, sizeof *w);
    if (!w) return fail(err, err_len, "out of memory", 0);
    w->width = width;
    w->height = height;
    w->kind = kind;
    int code = avformat_alloc_output_context2(&w->format, container, NULL, path);
    if (code < 0) { eff_video_writer_free(w); return fail(err, err_len, "cannot start the video file", code); }
    w->encoder = avcodec_alloc_context3(codec);
    if (!w->encoder) { eff_video_writer_free(w); return fail(err, err_len, "out of memory", 0); }
    AVCodecContext *e = w->encoder;
    e->width = width;
    e->height = height;
    e->time_base = (AVRational){fps_den, fps_num};
    e->framerate = (AVRational){fps_num, fps_den};
    e->sample_aspect_ratio = (AVRational){1, 1};
    if (kind == EFF_VIDEO_LOSSLESS_GRAY) {
        e->pix_fmt = AV_PIX_FMT_GRAY8;
    } else {
        int even = width % 2 == 0 && height % 2 == 0;
        e->pix_fmt = even && supports(codec, AV_PIX_FMT_YUV420P) ? AV_PIX_FMT_YUV420P
                   : supports(codec, AV_PIX_FMT_YUV444P) ? AV_PIX_FMT_YUV444P
                   : codec->pix_fmts ? codec->pix_fmts[0] : AV_PIX_FMT_YUV420P;
        e->colorspace = AVCOL_SPC_SMPTE170M;
        e->color_range = AVCOL_RANGE_MPEG;
        /* One thread: the network has the cores; encoding overlaps with it. */
        e->thread_count = 1;
        if (codec->id == AV_CODEC_ID_H264) {
            av_opt_set(e->priv_data, "preset", "veryfast", 0);
            av_opt_set(e->priv_data, "crf", "20", 0);
        } else if (codec->id == AV_CODEC_ID_MPEG4) {
            e->flags |= AV_CODEC_FLAG_QSCALE;
            e->global_quality = FF_QP2LAMBDA * 3;
        }
    }
    if (w->format->oformat->flags & AVFMT_GLOBALHEADER) e->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    code = avcodec_open2(e, codec, NULL);
    if (code < 0) { eff_video_writer_free(w); return fail(err, err_len, "cannot start the video encoder", code); }
    w->stream = avformat_new_stream(w->format, NULL);
    if (!w->stream) { eff_video_writer_free(w); return fail(err, err_len, "out of memory", 0); }
    avcodec_parameters_from_context(w->stream->codecpar, e);
    w->stream->time_base = e->time_base;
    w->stream->avg_frame_rate = e->framerate;
    code = avio_open(&w->format->pb, path, AVIO_FLAG_WRITE);
    if (code < 0) { eff_video_writer_free(w); return fail(err, err_len, "cannot create the video file", code); }
    code = avformat_write_header(w->format, NULL);
    if (code < 0) { eff_video_writer_free(w); return fail(err, err_len, "cannot write the video's header", code); }
    w->frame = av_frame_alloc();
    w->packet = av_packet_alloc();
    if (!w->frame || !w->packet) { eff_video_writer_free(w); return fail(err, err_len, "out of memory", 0); }
    w->frame->format = e->pix_fmt;
    w->frame->width = width;
    w->frame->height = height;
    code = av_frame_get_buffer(w->frame, 0);
    if (code < 0) { eff_video_writer_free(w); return fail(err, err_len, "out of memory", code); }
    if (kind != EFF_VIDEO_LOSSLESS_GRAY) {
        w->scaler = sws_getContext(width, height, AV_PIX_FMT_RGB24, width, height, e->pix_fmt, SWS_BICUBIC, NULL, NULL, NULL);
        if (!w->scaler) { eff_video_writer_free(w); return fail(err, err_len, "cannot convert RGB to the encoder's pixel format", 0); }
    }
    snprintf(codec_name, codec_len, "%s", codec->name);
    *out = w;
    return 0;
}

/* Sends `frame` (NULL: the end) to the encoder and writes every packet it gives back. */
static int encode(eff_video_writer *w, AVFrame *frame, char *err, size_t err_len) {
    int code = avcodec_send_frame(w->encoder, frame);
    if (code < 0) return fail(err, err_len, "the video encoder refused a frame", code);
    for (;;) {
        code = avcodec_receive_packet(w->encoder, w->packet);
        if (code == AVERROR(EAGAIN) || code == AVERROR_EOF) return 0;
        if (code < 0) return fail(err, err_len, "the video encoder failed", code);
        av_packet_rescale_ts(w->packet, w->encoder->time_base, w->stream->time_base);
        w->packet->stream_index = w->stream->index;
        code = av_interleaved_write_frame(w->format, w->packet);
        if (code < 0) return fail(err, err_len, "cannot write to the video file", code);
    }
}

int eff_video_write(eff_video_writer *w, const uint8_t *pixels, char *err, size_t err_len) {
    last_log_line[0] = 0;
    int code = av_frame_make_writable(w->frame);
    if (code < 0) return fail(err, err_len, "out of memory", code);
    if (w->kind == EFF_VIDEO_LOSSLESS_GRAY) {
        for (int y = 0; y < w->height; y++) memcpy(w->frame->data[0] + (size_t)y * w->frame->linesize[0], pixels + (size_t)y * w->width, w->width);
    } else {
        const uint8_t *planes[4] = {pixels, NULL, NULL, NULL};
        int strides[4] = {w->width * 3, 0, 0, 0};
        sws_scale(w->scaler, planes, strides, 0, w->height, w->frame->data, w->frame->linesize);
    }
    w->frame->pts = w->next_pts++;
    return encode(w, w->frame, err, err_len);
}

int eff_video_writer_finish(eff_video_writer *w, char *err, size_t err_len) {
    last_log_line[0] = 0;
    if (encode(w, NULL, err, err_len) != 0) return EFF_VIDEO_ERROR;
    int code = av_write_trailer(w->format);
    if (code < 0) return fail(err, err_len, "cannot finish the video file", code);
    code = avio_closep(&w->format->pb);
    if (code < 0) return fail(err, err_len, "cannot finish the video file", code);
    return 0;
}

void eff_video_writer_free(eff_video_writer *w) {
    if (!w) return;
    sws_freeContext(w->scaler);
    av_frame_free(&w->frame);
    av_packet_free(&w->packet);
    avcodec_free_context(&w->encoder);
    if (w->format) {
        if (w->format->pb) avio_closep(&w->format->pb);
        avformat_free_context(w->format);
    }
    free(w);
}
