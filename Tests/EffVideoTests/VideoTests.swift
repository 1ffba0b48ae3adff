import EffImage
import EffVideo
import Foundation
import Testing

/// Reading and writing videos: frames round-trip losslessly through FFV1, decoded frames equal
/// the `ffmpeg` program's RGB output bit for bit, videos are recognised by content, and broken
/// files give one-line errors.
@Suite struct VideoTests {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func temporaryFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-video-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    /// Runs the `ffmpeg` program (installed by scripts/install-deps.sh) quietly; throws on failure.
    static func ffmpeg(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"] + arguments
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw ImageError(.invalidArgument, "ffmpeg", String(decoding: message, as: UTF8.self))
        }
    }

    /// A 2-second, 15 fps, 640 x 480 H.264 clip of two sample photos panning (60 frames).
    static func makeClip(in folder: URL, name: String = "clip.mp4", codec: [String] = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]) throws -> String {
        let path = folder.appendingPathComponent(name).path
        let samples = packageRoot.appendingPathComponent("samples")
        try ffmpeg(["-loop", "1", "-t", "2", "-framerate", "15", "-i", samples.appendingPathComponent("astronaut.jpg").path,
                    "-loop", "1", "-t", "2", "-framerate", "15", "-i", samples.appendingPathComponent("coffee.jpg").path,
                    "-filter_complex", "[0]scale=800:600,setsar=1,crop=640:480:x='t*40':y='t*20'[a];[1]scale=800:600,setsar=1,crop=640:480:x='80-t*40':y='t*30'[b];[a][b]concat=n=2:v=1[out]",
                    "-map", "[out]"] + codec + [path])
        return path
    }

    @Test func decodedFramesEqualTheFFmpegProgramsRGB() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clip = try Self.makeClip(in: folder)
        let reader = try VideoReader(contentsOf: clip)
        #expect(reader.info.width == 640 && reader.info.height == 480)
        #expect(reader.info.rate.numerator == 15 && reader.info.rate.denominator == 1)
        #expect(reader.info.declaredFrames == 60)
        var frames: [VideoFrame] = []
        while let item = try reader.next() {
            guard case .frame(let frame) = item else { Issue.record("a frame of a clean clip was reported corrupt"); continue }
            frames.append(frame)
        }
        #expect(frames.map(\.index) == Array(0..<60))
        #expect(abs(frames[45].time - 3.0) < 1e-9)
        for k in [0, 17, 45] {
            let png = folder.appendingPathComponent("frame\(k).png").path
            try Self.ffmpeg(["-i", clip, "-vf", "select=eq(n\\,\(k))", "-vframes", "1", "-pix_fmt", "rgb24", png])
            let expected = try ImageCodec.decode(contentsOf: png)
            #expect(frames[k].image.pixels == expected.pixels, "frame \(k) differs from ffmpeg's")
        }
    }

    /// A phone's portrait video: landscape frames stored with a display matrix saying "turn 90
    /// degrees". Frames come out turned, equal to what the ffmpeg program (autorotate) gives.
    @Test func rotatedVideosComeOutAsShown() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clip = try Self.makeClip(in: folder)
        for degrees in [90, 180, 270] {
            let rotated = folder.appendingPathComponent("rotated\(degrees).mp4").path
            try Self.ffmpeg(["-i", clip, "-c", "copy", "-metadata:s:v:0", "rotate=\(degrees)", rotated])
            let reader = try VideoReader(contentsOf: rotated)
            // FFmpeg 5.1 stores the `rotate` tag as a display matrix turning the frames that
            // many degrees counter-clockwise (ffprobe: "rotation=90"), i.e. 360 - that clockwise.
            #expect(reader.info.rotation == (360 - degrees) % 360)
            #expect(reader.info.width == (degrees == 180 ? 640 : 480) && reader.info.height == (degrees == 180 ? 480 : 640))
            var frames: [VideoFrame] = []
            while let item = try reader.next() { if case .frame(let frame) = item { frames.append(frame) } }
            #expect(frames.count == 60)
            let png = folder.appendingPathComponent("rotated\(degrees).png").path
            try Self.ffmpeg(["-i", rotated, "-vf", "select=eq(n\\,33)", "-vframes", "1", "-pix_fmt", "rgb24", png])
            let shown = try ImageCodec.decode(contentsOf: png)
            #expect(frames[33].image.width == shown.width && frames[33].image.height == shown.height)
            #expect(frames[33].image.pixels == shown.pixels, "frame 33 of the \(degrees) degree video differs from ffmpeg's")
        }
    }

    @Test func losslessGrayFramesRoundTrip() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("mask.mkv").path
        let writer = try VideoWriter(path: path, width: 33, height: 17, rate: (30000, 1001), kind: .losslessGray)
        #expect(writer.codec == "ffv1")
        var frames: [[UInt8]] = []
        for k in 0..<7 {
            frames.append((0..<(33 * 17)).map { (i: Int) -> UInt8 in UInt8((i * 7 + k * 13) % 21) })
        }
        for frame in frames { try writer.append(gray: frame) }
        // Nothing is at the final name until the video is finished.
        #expect(!FileManager.default.fileExists(atPath: path))
        try writer.finish()
        let reader = try VideoReader(contentsOf: path)
        #expect(reader.info.width == 33 && reader.info.height == 17)
        #expect(abs(reader.info.framesPerSecond - 29.97) < 0.01)
        var read: [[UInt8]] = []
        while let item = try reader.next() {
            if case .frame(let frame) = item { read.append(stride(from: 0, to: frame.image.pixels.count, by: 3).map { frame.image.pixels[$0] }) }
        }
        #expect(read == frames)
    }

    @Test func colourVideosAreH264WithTheInputsSizeAndRate() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // H.264 where the container holds it (4:4:4 for odd sizes); WebM's own codec, VP9, in .webm.
        for (name, width, height, encoder, decoder) in [("even.mp4", 64, 48, "libx264", "h264"), ("odd.mkv", 63, 47, "libx264", "h264"),
                                                        ("clip.webm", 64, 48, "libvpx-vp9", "vp9")] {
            let path = folder.appendingPathComponent(name).path
            let writer = try VideoWriter(path: path, width: width, height: height, rate: (25, 1), kind: .colour)
            #expect(writer.codec == encoder)
            for k in 0..<10 { try writer.append(RGBImage(width: width, height: height, fill: (UInt8(k * 20), 128, 200))) }
            try writer.finish()
            let reader = try VideoReader(contentsOf: path)
            #expect(reader.info.width == width && reader.info.height == height && reader.info.codec.hasPrefix(decoder))
            var count = 0
            while let item = try reader.next() {
                guard case .frame(let frame) = item else { continue }
                // A flat colour survives lossy coding to within a few levels.
                let k = count
                #expect(abs(Int(frame.image.pixels[0]) - k * 20) <= 4 && abs(Int(frame.image.pixels[2]) - 200) <= 4)
                count += 1
            }
            #expect(count == 10)
        }
    }

    @Test func videosAreRecognisedByContent() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clip = try Self.makeClip(in: folder, name: "clip.mkv")
        let disguised = folder.appendingPathComponent("holiday.jpg").path
        try FileManager.default.copyItem(atPath: clip, toPath: disguised)
        #expect(VideoFile.isVideo(atPath: clip))
        #expect(VideoFile.isVideo(atPath: disguised))
        // MPEG-TS (broadcast, dashcams): recognised and read through.
        let transport = folder.appendingPathComponent("clip.ts").path
        try Self.ffmpeg(["-i", clip, "-c:v", "mpeg2video", "-q:v", "4", transport])
        #expect(VideoFile.isVideo(atPath: transport))
        let tsReader = try VideoReader(contentsOf: transport)
        var tsFrames = 0
        while let item = try tsReader.next() { if case .frame = item { tsFrames += 1 } }
        #expect(tsFrames == 60)
        let still = Self.packageRoot.appendingPathComponent("samples/coffee.jpg").path
        #expect(!VideoFile.isVideo(atPath: still))
        let text = folder.appendingPathComponent("notes.mp4").path
        try Data("not a video at all\n".utf8).write(to: URL(fileURLWithPath: text))
        #expect(!VideoFile.isVideo(atPath: text))
        // A GIF is a video when it has several frames, a picture when it has one.
        let animated = folder.appendingPathComponent("animated.gif").path, single = folder.appendingPathComponent("still.gif").path
        try Self.ffmpeg(["-i", clip, "-vf", "scale=80:60", "-frames:v", "5", animated])
        try Self.ffmpeg(["-i", clip, "-vf", "scale=80:60", "-frames:v", "1", single])
        #expect(VideoFile.isVideo(atPath: animated))
        #expect(!VideoFile.isVideo(atPath: single))
        let reader = try VideoReader(contentsOf: animated)
        var count = 0
        while try reader.next() != nil { count += 1 }
        #expect(count == 5)
    }

    @Test func brokenVideosGiveOneLineErrors() throws {
        let folder = try Self.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        func failure(_ path: String) -> String {
            do {
                let reader = try VideoReader(contentsOf: path)
                while try reader.next() != nil {}
                return "no error"
            } catch {
                return "\(error)"
            }
        }
        let clip = try Self.makeClip(in: folder)
        let data = try Data(contentsOf: URL(fileURLWithPath: clip))
        // Cut in half: the index (moov) written at the end is missing.
        let truncated = folder.appendingPathComponent("truncated.mp4").path
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: truncated))
        #expect(failure(truncated) == "\(truncated): cannot read the video: Invalid data found when processing input (moov atom not found)")
        // With the index first (faststart), the frames run out before the index says.
        let faststart = folder.appendingPathComponent("faststart.mp4").path
        try Self.ffmpeg(["-i", clip, "-c", "copy", "-movflags", "+faststart", faststart])
        let cut = folder.appendingPathComponent("cut.mp4").path
        try Data(contentsOf: URL(fileURLWithPath: faststart)).prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        #expect(failure(cut).hasPrefix("\(cut): the video ends after "))
        #expect(failure(cut).hasSuffix(" of the 60 frames its container declares (truncated?)"))
        // Sound only.
        let audio = folder.appendingPathComponent("tone.m4a").path
        try Self.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", audio])
        #expect(failure(audio) == "\(audio): no video stream in it (only audio, subtitles or data)")
        // A video stream with no frames (written by effdense's own writer; FFmpeg 5.1's Matroska
        // and MP4 muxers write no readable stream without frames, AVI does).
        let empty = folder.appendingPathComponent("empty.avi").path
        try VideoWriter(path: empty, width: 64, height: 48, rate: (25, 1), kind: .losslessGray).finish()
        #expect(failure(empty) == "\(empty): the video has no frames")
        // A codec this FFmpeg does not know: the Matroska codec ID renamed.
        let matroska = try Data(contentsOf: URL(fileURLWithPath: try Self.makeClip(in: folder, name: "clip.mkv")))
        let unknown = folder.appendingPathComponent("unknown.mkv").path
        let id = Data("V_MPEG4/ISO/AVC".utf8)
        let at = try #require(matroska.range(of: id))
        var renamed = matroska
        renamed.replaceSubrange(at, with: Data("V_XXXXX/ISO/AVC".utf8))
        try renamed.write(to: URL(fileURLWithPath: unknown))
        #expect(failure(unknown) == "\(unknown): its video codec is not one this system's FFmpeg knows (no decoder)")
        for message in [failure(truncated), failure(cut), failure(audio), failure(empty), failure(unknown)] {
            #expect(!message.contains("\n"))
        }
        // Writing: a container that is no video, and a mask video in MP4 (no FFV1 there).
        #expect(throws: ImageError.self) { try VideoWriter(path: folder.appendingPathComponent("out.png").path, width: 8, height: 8, rate: (25, 1), kind: .colour) }
        do {
            _ = try VideoWriter(path: folder.appendingPathComponent("mask.mp4").path, width: 8, height: 8, rate: (25, 1), kind: .losslessGray)
            Issue.record("FFV1 in MP4 was accepted")
        } catch {
            #expect("\(error)".hasSuffix("a mask video is lossless FFV1, which a .mp4 container does not hold: name it .mkv"))
        }
        // Nothing was left behind by the writers that failed or finished.
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains("effdense-partial") }
        #expect(left.isEmpty)
    }
}
