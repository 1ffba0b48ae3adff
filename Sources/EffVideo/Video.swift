import CVideoCodecs
import EffCore
import EffImage
import Foundation

/// What a video file holds, as its container declares it.
public struct VideoInfo: Sendable {
    /// The frames' size as shown (after `rotation`).
    public let width: Int
    public let height: Int
    /// Degrees the stored frames are turned clockwise to be shown (0, 90, 180, 270), from the
    /// stream's display matrix (phones store portrait videos as landscape frames and say so
    /// there). Frames come out turned, as the ffmpeg program and OpenCV show them.
    public let rotation: Int
    /// Frames per second as a fraction (the stream's average rate).
    public let rate: (numerator: Int, denominator: Int)
    /// Frames the container declares (MP4 does, Matroska does not).
    public let declaredFrames: Int?
    /// Seconds, when known.
    public let duration: Double?
    /// The decoder's name (`h264`, `mjpeg`...) and the container's (`mov,mp4,m4a,3gp,3g2,mj2`...).
    public let codec: String
    public let container: String

    public var framesPerSecond: Double { Double(rate.numerator) / Double(rate.denominator) }

    /// Frames expected: declared, else estimated from the duration (for progress bars).
    public var expectedFrames: Int? {
        declaredFrames ?? duration.map { max(1, Int(($0 * framesPerSecond).rounded())) }
    }
}

/// Recognising videos by content.
public enum VideoFile {
    /// Whether the file at `path` is a video: a container FFmpeg reads (MP4, Matroska/WebM, AVI,
    /// MPEG-TS...), or a GIF with more than one frame. Still pictures (PNG, JPEG, a one-frame
    /// GIF...) are not; neither is a file that cannot be read.
    public static func isVideo(atPath path: String) -> Bool {
        // Only a regular file is opened here: a FIFO would block, a device read on.
        guard FileManager.default.fileExists(atPath: path), PathText.existingNonFile(path) == nil,
              let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 4096), !head.isEmpty else { return false }
        if let format = ImageFormat.sniff(head) {
            return format == .gif && eff_video_has_several_frames(path) != 0
        }
        return head.withUnsafeBytes { eff_video_probe($0.bindMemory(to: UInt8.self).baseAddress, $0.count) } != 0
    }
}

/// One decoded frame: its number from 0 (frames that could not be decoded are counted), its
/// presentation time from the start of the stream, its pixels.
public struct VideoFrame: Sendable {
    public let index: Int
    public let time: Double
    public let image: RGBImage
}

/// Reads a video file frame by frame through FFmpeg (libavformat, libavcodec), each frame as
/// 8-bit RGB at the stream's size (converted as `ffmpeg -pix_fmt rgb24` converts by default).
/// Errors are `ImageError`s naming the file.
public final class VideoReader {
    /// What `next` gives.
    public enum Item: Sendable {
        case frame(VideoFrame)
        /// A frame that could not be decoded: reported and skipped; the video goes on.
        case corrupt(index: Int, time: Double, problem: String)
    }

    public let path: String
    public let info: VideoInfo
    private var reader: OpaquePointer?
    private var framesRead = 0
    /// The frames as stored, before the rotation.
    private let storedWidth: Int, storedHeight: Int
    /// The EXIF orientation that shows the stored frames (1: as they are).
    private let orientation: Int

    /// Opens `path`'s best video stream; frames over `maxPixels` pixels are refused.
    public init(contentsOf path: String, maxPixels: Int = ImageCodec.defaultMaxPixels) throws {
        self.path = path
        if let problem = PathText.existingNonFile(path) ?? (FileManager.default.fileExists(atPath: path) ? nil : "no such file") {
            throw ImageError(.unreadable, path, problem)
        }
        var handle: OpaquePointer?
        var raw = eff_video_info()
        var message = [CChar](repeating: 0, count: 512)
        guard eff_video_open(path, Int64(maxPixels), &handle, &raw, &message, message.count) == 0, let handle else {
            throw ImageError(.corrupt, path, String(cBuffer: message))
        }
        reader = handle
        (storedWidth, storedHeight) = (Int(raw.width), Int(raw.height))
        let rotation = Int(raw.rotation)
        orientation = [90: 6, 180: 3, 270: 8][rotation] ?? 1
        let turned = rotation == 90 || rotation == 270
        info = VideoInfo(width: turned ? storedHeight : storedWidth, height: turned ? storedWidth : storedHeight, rotation: rotation,
                         rate: (Int(raw.fps_num), Int(raw.fps_den)),
                         declaredFrames: raw.declared_frames > 0 ? Int(raw.declared_frames) : nil,
                         duration: raw.duration >= 0 ? raw.duration : nil,
                         codec: withUnsafeBytes(of: raw.codec) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) },
                         container: withUnsafeBytes(of: raw.container) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
    }

    deinit { eff_video_close(reader) }

    /// The next frame, a frame that could not be decoded, or nil at the end. A video that ends
    /// before the frames its container declares is an error (a truncated file).
    public func next() throws -> Item? {
        guard let reader else { return nil }
        var pixels = [UInt8](repeating: 0, count: storedWidth * storedHeight * 3)
        var index: Int64 = 0, time = 0.0
        var message = [CChar](repeating: 0, count: 512)
        let status = pixels.withUnsafeMutableBufferPointer {
            eff_video_read(reader, $0.baseAddress, &index, &time, &message, message.count)
        }
        switch status {
        case EFF_VIDEO_FRAME:
            framesRead += 1
            let stored = try RGBImage(width: storedWidth, height: storedHeight, pixels: pixels)
            return .frame(VideoFrame(index: Int(index), time: time, image: stored.oriented(orientation)))
        case EFF_VIDEO_CORRUPT_FRAME:
            framesRead += 1
            return .corrupt(index: Int(index), time: time, problem: String(cBuffer: message))
        case EFF_VIDEO_END:
            close()
            if framesRead == 0 { throw ImageError(.empty, path, "the video has no frames" + (info.declaredFrames.map { " (its container declares \($0))" } ?? "")) }
            if let declared = info.declaredFrames, framesRead < declared {
                throw ImageError(.corrupt, path, "the video ends after \(framesRead) of the \(declared) frames its container declares (truncated?)")
            }
            return nil
        default:
            close()
            throw ImageError(.corrupt, path, "after \(framesRead) frames: \(String(cBuffer: message))")
        }
    }

    private func close() {
        eff_video_close(reader)
        reader = nil
    }
}

/// Writes a video through FFmpeg under a temporary name, renamed onto `path` by `finish` (so a
/// failed or killed run leaves no half-written video). The container comes from `path`'s
/// extension.
public final class VideoWriter {
    public enum Kind: Sendable {
        /// For viewing: H.264 (libx264, CRF 20) where the container holds it and the system's
        /// FFmpeg has it, else MPEG-4 part 2, else the container's own codec.
        case colour
        /// For machines: lossless FFV1, one byte a pixel (class indices); needs .mkv (or .avi, .nut).
        case losslessGray
    }

    public let path: String
    /// The encoder used (`libx264`, `mpeg4`, `ffv1`...).
    public let codec: String
    public let width: Int
    public let height: Int
    private let kind: Kind
    private var writer: OpaquePointer?
    private let pending: AtomicFile.Pending

    /// Starts a video of `width` x `height` at `rate` frames per second.
    public init(path: String, width: Int, height: Int, rate: (numerator: Int, denominator: Int), kind: Kind) throws {
        self.path = path
        self.width = width
        self.height = height
        self.kind = kind
        pending = try ImageError.whileWriting { try AtomicFile.Pending(for: path) }
        var handle: OpaquePointer?
        var name = [CChar](repeating: 0, count: 64), message = [CChar](repeating: 0, count: 512)
        guard eff_video_writer_open(pending.temporaryPath, path, Int32(width), Int32(height), Int32(rate.numerator), Int32(rate.denominator),
                                    kind == .colour ? EFF_VIDEO_COLOUR : EFF_VIDEO_LOSSLESS_GRAY, &handle, &name, name.count,
                                    &message, message.count) == 0, let handle else {
            pending.abandon()
            throw ImageError(.unwritable, path, String(cBuffer: message))
        }
        writer = handle
        codec = String(cBuffer: name)
    }

    deinit {
        eff_video_writer_free(writer)
        pending.abandon()
    }

    /// Appends a colour frame (of the video's size).
    public func append(_ image: RGBImage) throws {
        guard kind == .colour, image.width == width, image.height == height else {
            throw ImageError(.invalidArgument, path, "a \(image.width)x\(image.height) frame does not fit a \(width)x\(height) \(kind == .colour ? "" : "mask ")video")
        }
        try write(image.pixels)
    }

    /// Appends a gray frame: `width * height` bytes.
    public func append(gray values: [UInt8]) throws {
        guard kind == .losslessGray, values.count == width * height else {
            throw ImageError(.invalidArgument, path, "\(values.count) values do not fit a \(width)x\(height) mask video")
        }
        try write(values)
    }

    private func write(_ bytes: [UInt8]) throws {
        guard let writer else { throw ImageError(.unwritable, path, "the video is already finished") }
        var message = [CChar](repeating: 0, count: 512)
        let status = bytes.withUnsafeBufferPointer { eff_video_write(writer, $0.baseAddress, &message, message.count) }
        if status != 0 { throw ImageError(.unwritable, path, String(cBuffer: message)) }
    }

    /// Flushes the encoder, finishes the container and puts the file in place.
    public func finish() throws {
        guard let writer else { return }
        var message = [CChar](repeating: 0, count: 512)
        let status = eff_video_writer_finish(writer, &message, message.count)
        eff_video_writer_free(writer)
        self.writer = nil
        guard status == 0 else {
            pending.abandon()
            throw ImageError(.unwritable, path, String(cBuffer: message))
        }
        try ImageError.whileWriting { try pending.commit() }
    }
}
