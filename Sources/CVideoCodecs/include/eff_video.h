#ifndef EFF_VIDEO_H
#define EFF_VIDEO_H

#include <stddef.h>
#include <stdint.h>

/* Thin wrappers over FFmpeg's libraries (libavformat, libavcodec, libswscale): a video file is
   read frame by frame as 8-bit RGB, and a video is written from 8-bit RGB (or gray) frames.
   Every failure comes back as a status with a one-line message in `err`; FFmpeg's own log is
   kept quiet (its last error line is folded into the message). */

#define EFF_VIDEO_FRAME 1
#define EFF_VIDEO_END 0
#define EFF_VIDEO_CORRUPT_FRAME 2
#define EFF_VIDEO_ERROR (-1)

typedef struct {
    int width, height;
    /* Frames per second as a fraction (the stream's average rate, else its base rate). */
    int fps_num, fps_den;
    /* Frames the container declares, or -1. */
    int64_t declared_frames;
    /* Seconds, or -1 when unknown. */
    double duration;
    char codec[32];
    char container[64];
    /* Degrees the stored frames are turned clockwise to be shown (0, 90, 180, 270): the stream's
       display matrix, as the ffmpeg program's autorotate reads it (a phone's portrait video). */
    int rotation;
} eff_video_info;

/* Whether the first bytes of a file (`size` of them, any number) look like a video container
   FFmpeg reads: its content probe scores it at least 50 of 100, and the demuxer is not one for
   still pictures or plain text. Recognised by content only (no file name). */
int eff_video_probe(const uint8_t *head, size_t size);

/* Whether the file holds at least two frames of video (an animated GIF, as opposed to a still
   one); 0 when it cannot be read. */
int eff_video_has_several_frames(const char *path);

typedef struct eff_video_reader eff_video_reader;

/* Opens `path`'s best video stream and its decoder; `max_pixels` bounds width * height. */
int eff_video_open(const char *path, int64_t max_pixels, eff_video_reader **out, eff_video_info *info,
                   char *err, size_t err_len);

/* Decodes the next frame into `rgb` (width * height * 3 bytes of the size `info` gave; a frame
   of another size is scaled to it). Returns EFF_VIDEO_FRAME, EFF_VIDEO_END,
   EFF_VIDEO_CORRUPT_FRAME (a frame that could not be decoded: skipped, `err` says why; reading
   may go on) or EFF_VIDEO_ERROR. `index` is the frame's number from 0 (corrupt frames counted),
   `time_s` its presentation time from the stream's start. */
int eff_video_read(eff_video_reader *reader, uint8_t *rgb, int64_t *index, double *time_s, char *err, size_t err_len);

void eff_video_close(eff_video_reader *reader);

typedef struct eff_video_writer eff_video_writer;

#define EFF_VIDEO_COLOUR 0 /* for viewing: H.264, else MPEG-4 part 2, else the container's own codec */
#define EFF_VIDEO_LOSSLESS_GRAY 1 /* for machines: FFV1, one byte a pixel */

/* Starts writing a video of `kind` to `path`, its container chosen from `format_name_path`'s
   extension (the final name, when `path` is a temporary one). `codec` receives the encoder's
   name. */
int eff_video_writer_open(const char *path, const char *format_name_path, int width, int height, int fps_num, int fps_den,
                          int kind, eff_video_writer **out, char *codec, size_t codec_len, char *err, size_t err_len);

/* Appends one frame: width * height * 3 bytes of RGB (colour) or width * height bytes (gray). */
int eff_video_write(eff_video_writer *writer, const uint8_t *pixels, char *err, size_t err_len);

/* Flushes the encoder and writes the container's trailer; the file is then complete. */
int eff_video_writer_finish(eff_video_writer *writer, char *err, size_t err_len);

void eff_video_writer_free(eff_video_writer *writer);

#endif
