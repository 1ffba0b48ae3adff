import EffCore
import EffImage
import EffVideo
import Foundation
import Testing

/// `detect` and `segment` on videos: each frame's JSON line equals the command's output on that
/// frame extracted as a PNG by the `ffmpeg` program; the output videos have the input's frame
/// count, size and rate; broken videos fail alone with one line and leave nothing; a corrupt
/// frame is reported and skipped; folders mix pictures and videos, and `--resume` skips
/// finished videos.
@Suite struct VideoCLITests {
    static let detector = DetectCLITests.weights
    static let segmenter = CLITests.packageRoot.appendingPathComponent("Tests/EffDenseTests/Fixtures/segmentation/deeplabv3plus_b0_colours.safetensors").path

    /// Runs the `ffmpeg` program (installed by scripts/install-deps.sh) quietly.
    static func ffmpeg(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"] + arguments
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try #require(process.terminationStatus == 0, "ffmpeg \(arguments.joined(separator: " ")) failed")
    }

    /// A 4-second, 15 fps, 640 x 480 clip of two sample photos panning (60 frames), H.264 unless
    /// `codec` says otherwise.
    static func makeClip(_ path: String, codec: [String] = ["-c:v", "libx264", "-pix_fmt", "yuv420p"]) throws {
        let samples = CLITests.packageRoot.appendingPathComponent("samples")
        try ffmpeg(["-loop", "1", "-t", "2", "-framerate", "15", "-i", samples.appendingPathComponent("astronaut.jpg").path,
                    "-loop", "1", "-t", "2", "-framerate", "15", "-i", samples.appendingPathComponent("coffee.jpg").path,
                    "-filter_complex", "[0]scale=800:600,setsar=1,crop=640:480:x='t*40':y='t*20'[a];[1]scale=800:600,setsar=1,crop=640:480:x='80-t*40':y='t*30'[b];[a][b]concat=n=2:v=1[out]",
                    "-map", "[out]"] + codec + [path])
    }

    /// Frame `k` of `video` as a PNG, extracted by the `ffmpeg` program.
    static func extractFrame(_ k: Int, of video: String, to png: String, pixelFormat: String = "rgb24") throws {
        try ffmpeg(["-i", video, "-vf", "select=eq(n\\,\(k))", "-vframes", "1", "-pix_fmt", pixelFormat, png])
    }

    static func lines(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    /// Every frame of a video, decoded.
    static func frames(_ path: String) throws -> (VideoInfo, [RGBImage]) {
        let reader = try VideoReader(contentsOf: path)
        var images: [RGBImage] = []
        while let item = try reader.next() { if case .frame(let frame) = item { images.append(frame.image) } }
        return (reader.info, images)
    }

    @Test func eachFramesDetectionsAreThoseOfTheFrameAsAPicture() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clip = folder.appendingPathComponent("clip.mp4").path
        try Self.makeClip(clip)
        let annotated = folder.appendingPathComponent("annotated.mp4").path, json = folder.appendingPathComponent("dets.jsonl").path
        let flags = ["--weights", Self.detector, "--score-threshold", "0.3"]
        let run = try CLITests.run(["detect", clip, "-o", annotated, "--json", json] + flags)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("\(clip): 60 frames in "), "\(run.stderr)")
        #expect(run.stderr.contains(" frames/s"))
        let records = try Self.lines(json)
        #expect(records.count == 61)
        #expect(records.dropLast().map { $0["frame"] as? Int } == Array(0..<60))
        #expect(abs((records[30]["time_s"] as? Double ?? -1) - 2.0) < 1e-9)
        let closing = try #require(records.last)
        #expect(closing["frames"] as? Int == 60 && (closing["corrupt_frames"] as? [Int])?.isEmpty == true)
        // The annotated video: every frame, the input's size and rate, H.264.
        let (info, frames) = try Self.frames(annotated)
        #expect(frames.count == 60 && info.width == 640 && info.height == 480 && info.framesPerSecond == 15 && info.codec == "h264")
        var boxes = 0
        for k in [0, 31, 59] {
            let png = folder.appendingPathComponent("frame\(k).png").path
            try Self.extractFrame(k, of: clip, to: png)
            let picture = try CLITests.run(["detect", png, "--json", "-", "--no-images"] + flags)
            let expected = try #require(try JSONSerialization.jsonObject(with: Data(picture.stdout.utf8)) as? [String: Any])
            let got = records[k]["detections"] as? [[String: Any]] ?? []
            boxes += got.count
            #expect(NSArray(array: got).isEqual(to: expected["detections"] as? [[String: Any]] ?? [[:]]), "frame \(k)")
        }
        #expect(boxes > 0)
    }

    @Test func classifyGivesEachFramesTopClassesWithTheRealLite0() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clip = folder.appendingPathComponent("clip.mp4").path
        try Self.makeClip(clip)
        let run = try CLITests.run(["classify", clip, "--vid-stride", "15", "--top", "3", "--json", "-", "--weights", CLITests.realLite0])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = run.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(lines.compactMap { $0["frame"] as? Int } == [0, 15, 30, 45])
        let png = folder.appendingPathComponent("frame45.png").path
        try Self.extractFrame(45, of: clip, to: png)
        let picture = try CLITests.run(["classify", png, "--top", "3", "--json", "-", "--weights", CLITests.realLite0])
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(picture.stdout.utf8)) as? [String: Any])
        let predictions = lines[3]["predictions"] as? [[String: Any]] ?? []
        #expect(NSArray(array: predictions).isEqual(to: expected["predictions"] as? [[String: Any]] ?? [[:]]))
        // The second half of the clip pans over samples/coffee.jpg.
        #expect(predictions.first?["label"] as? String == "espresso")
    }

    @Test func everyNthFrameMakesAShorterVideoOfTheSameLength() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clip = folder.appendingPathComponent("clip.mkv").path
        try Self.makeClip(clip)
        let run = try CLITests.run(["detect", clip, "--vid-stride", "3", "--json", "-", "--weights", Self.detector])
        #expect(run.status == 0, "\(run.stderr)")
        let frames = run.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(frames.compactMap { $0["frame"] as? Int } == Array(stride(from: 0, to: 60, by: 3)))
        let (info, images) = try Self.frames(folder.appendingPathComponent("clip.detections.mp4").path)
        #expect(images.count == 20 && info.framesPerSecond == 5)
    }

    @Test func framesCutInTilesGiveWhatTheFrameAsAPictureGivesInTiles() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clip = folder.appendingPathComponent("clip.mp4").path
        try Self.makeClip(clip)
        let tiles = ["--tile", "320", "--overlap", "64"]
        let detections = try CLITests.run(["detect", clip, "--vid-stride", "6", "--no-images", "--json", "-", "--weights", Self.detector] + tiles)
        #expect(detections.status == 0, "\(detections.stderr)")
        let frames = detections.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let json = folder.appendingPathComponent("seg.jsonl").path
        let masks = try CLITests.run(["segment", clip, "--vid-stride", "6", "--json", json, "--weights", Self.segmenter] + tiles)
        #expect(masks.status == 0, "\(masks.stderr)")
        let maskReader = try VideoReader(contentsOf: folder.appendingPathComponent("clip.mask.mkv").path)
        var maskFrames: [[UInt8]] = []
        while let item = try maskReader.next() {
            if case .frame(let frame) = item { maskFrames.append(stride(from: 0, to: frame.image.pixels.count, by: 3).map { frame.image.pixels[$0] }) }
        }
        #expect(maskFrames.count == 10)
        let k = 42   // the 8th frame processed
        let png = folder.appendingPathComponent("frame.png").path
        try Self.extractFrame(k, of: clip, to: png)
        let picture = try CLITests.run(["detect", png, "--no-images", "--json", "-", "--weights", Self.detector] + tiles)
        let expected = try #require(try JSONSerialization.jsonObject(with: Data(picture.stdout.utf8)) as? [String: Any])
        let line = try #require(frames.first { $0["frame"] as? Int == k })
        #expect(NSArray(array: line["detections"] as? [[String: Any]] ?? []).isEqual(to: expected["detections"] as? [[String: Any]] ?? [[:]]))
        let maskPNG = folder.appendingPathComponent("frame.tiled.png").path
        let segmented = try CLITests.run(["segment", png, "-o", maskPNG, "--weights", Self.segmenter] + tiles)
        #expect(segmented.status == 0, "\(segmented.stderr)")
        #expect(maskFrames[7] == (try ImageCodec.decodeIndexed(contentsOf: maskPNG)).indices)
    }

    @Test func aCorruptFrameIsReportedAndSkipped() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clean = folder.appendingPathComponent("clean.avi").path
        try Self.makeClip(clean, codec: ["-c:v", "mjpeg", "-q:v", "3"])
        // Frame 10's JPEG (the 11th start-of-image marker) overwritten from its first byte.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: clean)))
        var starts: [Int] = []
        for i in 0..<(bytes.count - 2) where bytes[i] == 0xFF && bytes[i + 1] == 0xD8 && bytes[i + 2] == 0xFF { starts.append(i) }
        try #require(starts.count == 60)
        for i in starts[10]..<(starts[10] + 2000) { bytes[i] = UInt8((i * 37 + 11) & 0x7F) }
        let clip = folder.appendingPathComponent("damaged.avi").path
        try Data(bytes).write(to: URL(fileURLWithPath: clip))
        let json = folder.appendingPathComponent("dets.jsonl").path
        let run = try CLITests.run(["detect", clip, "--json", json, "--weights", Self.detector])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("effdense: \(clip): frame 10 (0.67 s): the frame cannot be decoded"), "\(run.stderr)")
        #expect(run.stderr.contains("\(clip): 59 frames (1 corrupt, skipped) in "))
        let records = try Self.lines(json)
        #expect(records.compactMap { $0["frame"] as? Int } == Array(0..<60))
        #expect(records[10]["error"] != nil && records[10]["detections"] == nil && records[11]["detections"] != nil)
        #expect(records.last?["corrupt_frames"] as? [Int] == [10])
        #expect(try Self.frames(folder.appendingPathComponent("damaged.detections.mp4").path).1.count == 59)
    }

    @Test func brokenVideosFailWithOneLineAndLeaveNothing() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clip = folder.appendingPathComponent("clip.mp4").path
        try Self.makeClip(clip)
        let data = try Data(contentsOf: URL(fileURLWithPath: clip))
        let truncated = folder.appendingPathComponent("truncated.mp4").path
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: truncated))
        let faststart = folder.appendingPathComponent("faststart.mp4").path, cut = folder.appendingPathComponent("cut.mp4").path
        try Self.ffmpeg(["-i", clip, "-c", "copy", "-movflags", "+faststart", faststart])
        try Data(contentsOf: URL(fileURLWithPath: faststart)).prefix(data.count / 2).write(to: URL(fileURLWithPath: cut))
        let audio = folder.appendingPathComponent("tone.mkv").path
        try Self.ffmpeg(["-f", "lavfi", "-i", "sine=frequency=440:duration=1", audio])
        for broken in [truncated, cut, audio] {
            let output = folder.appendingPathComponent("out.mp4").path
            let run = try CLITests.run(["detect", broken, "-o", output, "--weights", Self.detector])
            CLITests.expectOneLineError(run, naming: broken)
            #expect(!FileManager.default.fileExists(atPath: output))
            let segment = try CLITests.run(["segment", broken, "--weights", Self.segmenter])
            CLITests.expectOneLineError(segment, naming: broken)
        }
        // `cut` was read for half its frames before it failed: its video never landed.
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.contains(".detections.") || $0.contains(".mask.") || $0.contains("effdense-partial") }
        #expect(left.isEmpty, "\(left)")
        // A mask video must be lossless: MP4 cannot hold it.
        let mp4Mask = try CLITests.run(["segment", clip, "-o", folder.appendingPathComponent("mask.mp4").path, "--weights", Self.segmenter])
        CLITests.expectOneLineError(mp4Mask, naming: folder.appendingPathComponent("mask.mp4").path)
    }

    /// A video being written is a temporary file until its last frame: SIGINT mid-video removes
    /// it; what SIGKILL leaves is swept by the next run, which writes the whole video.
    @Test func aSignalMidVideoLeavesNoHalfVideo() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clip = folder.appendingPathComponent("clip.mp4").path
        try Self.makeClip(clip)
        let arguments = ["detect", clip, "--weights", Self.detector, "--json", folder.appendingPathComponent("d.jsonl").path]
        var leftByKill = 0
        for signal in [SIGINT, SIGTERM, SIGKILL] {
            let pid = try NeverLoseDataTests.spawnWithDefaultSignals(CLITests.binary.path, arguments, environment: [:])
            usleep(1_200_000)
            kill(pid, signal)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            #expect(status & 0x7f == signal, "the run was not ended by signal \(signal) (status \(status))")
            let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
            #expect(!names.contains("clip.detections.mp4"), "a video of part of the frames landed")
            let partial = names.filter { $0.contains(AtomicFile.partialMarker) }
            if signal == SIGKILL { leftByKill = partial.count } else { #expect(partial.isEmpty, "signal \(signal) left \(partial)") }
        }
        #expect(leftByKill == 1, "SIGKILL did not find the video in flight")
        let again = try CLITests.run(arguments + ["--resume"])
        #expect(again.status == 0, "\(again.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        #expect(!names.contains { $0.contains(AtomicFile.partialMarker) }, "\(names)")
        #expect(try Self.frames(folder.appendingPathComponent("clip.detections.mp4").path).1.count == 60)
        #expect(try Self.lines(folder.appendingPathComponent("d.jsonl").path).count == 61)
    }

    @Test func segmentWritesEachFramesMaskLosslesslyAndAnOverlay() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let clip = folder.appendingPathComponent("clip.webm").path
        try Self.makeClip(clip, codec: ["-c:v", "libvpx-vp9", "-b:v", "1M", "-deadline", "realtime", "-cpu-used", "8"])
        let overlay = folder.appendingPathComponent("overlay.mp4").path, json = folder.appendingPathComponent("seg.jsonl").path
        let run = try CLITests.run(["segment", clip, "--overlay", overlay, "--json", json, "--weights", Self.segmenter])
        #expect(run.status == 0, "\(run.stderr)")
        let masks = try VideoReader(contentsOf: folder.appendingPathComponent("clip.mask.mkv").path)
        #expect(masks.info.codec == "ffv1")
        var maskFrames: [[UInt8]] = []
        while let item = try masks.next() {
            if case .frame(let frame) = item { maskFrames.append(stride(from: 0, to: frame.image.pixels.count, by: 3).map { frame.image.pixels[$0] }) }
        }
        #expect(maskFrames.count == 60)
        let records = try Self.lines(json)
        for k in [5, 50] {
            let png = folder.appendingPathComponent("frame\(k).png").path, maskPNG = folder.appendingPathComponent("frame\(k).mask.png").path
            try Self.extractFrame(k, of: clip, to: png)
            let picture = try CLITests.run(["segment", png, "--json", "-", "--weights", Self.segmenter])
            #expect(picture.status == 0, "\(picture.stderr)")
            let expected = try ImageCodec.decodeIndexed(contentsOf: maskPNG)
            #expect(maskFrames[k] == expected.indices, "frame \(k)'s mask differs from the picture's")
            let line = try #require(try JSONSerialization.jsonObject(with: Data(picture.stdout.utf8)) as? [String: Any])
            #expect(NSArray(array: records[k]["classes"] as? [[String: Any]] ?? []).isEqual(to: line["classes"] as? [[String: Any]] ?? [[:]]))
        }
        let (info, frames) = try Self.frames(overlay)
        #expect(frames.count == 60 && info.width == 640 && info.height == 480)
    }

    @Test func foldersMixPicturesAndVideosAndResumeSkipsFinishedVideos() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let inputs = folder.appendingPathComponent("in"), out = folder.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: inputs, withIntermediateDirectories: true)
        try Self.makeClip(inputs.appendingPathComponent("b_clip.mp4").path)
        for name in ["a_coffee.jpg", "c_rocket.jpg"] {
            try FileManager.default.copyItem(atPath: CLITests.packageRoot.appendingPathComponent("samples/\(name.dropFirst(2))").path,
                                              toPath: inputs.appendingPathComponent(name).path)
        }
        try Data("notes".utf8).write(to: inputs.appendingPathComponent("notes.txt"))
        let json = folder.appendingPathComponent("all.jsonl").path
        let flags = [inputs.path, "--out-dir", out.path, "--json", json, "--weights", Self.detector]
        let run = try CLITests.run(["detect"] + flags)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("3 inputs: 3 done in "), "\(run.stderr)")
        #expect(run.stderr.contains("60 video frames at "), "\(run.stderr)")
        let images = try Self.lines(json).map { PathText.lastComponent($0["image"] as? String ?? "") }
        #expect(images == ["a_coffee.jpg"] + Array(repeating: "b_clip.mp4", count: 61) + ["c_rocket.jpg"])
        for name in ["a_coffee.detections.png", "b_clip.detections.mp4", "c_rocket.detections.png"] {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(name).path), "\(name)")
        }
        let before = try String(contentsOfFile: json, encoding: .utf8)
        let resumed = try CLITests.run(["detect"] + flags + ["--resume"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("3 inputs: 0 done, 3 skipped (--resume: already done)"), "\(resumed.stderr)")
        #expect(try String(contentsOfFile: json, encoding: .utf8) == before)
        // A video whose output is gone runs again, its old lines replaced.
        try FileManager.default.removeItem(at: out.appendingPathComponent("b_clip.detections.mp4"))
        let again = try CLITests.run(["detect"] + flags + ["--resume"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stderr.contains("3 inputs: 1 done, 2 skipped"), "\(again.stderr)")
        let after = try Self.lines(json).map { PathText.lastComponent($0["image"] as? String ?? "") }
        #expect(after.sorted() == images.sorted())
    }
}
