import EffBatch
import EffCore
import EffImage
import EffVideo
import Foundation

/// What a command makes of one video frame: the frame's JSON fields, and a picture for each of
/// the videos it writes (in the order of `runVideo`'s outputs).
struct FrameResult {
    enum Picture {
        case colour(RGBImage)
        /// One byte a pixel (class indices), for a lossless mask video.
        case gray([UInt8])
    }

    var json: [String: Any]
    var pictures: [Picture]
}

/// Frames that fail to decode one after another before a video is given up.
private let corruptFramesInARowAllowed = 100

extension PictureRun {
    /// Runs a video frame by frame, each `stride`th frame through `process`: decoding reads
    /// ahead on its own thread, several frames go through the network at once (--batch-size,
    /// the threads shared between them), and on this thread each frame's pictures are encoded
    /// into `outputs` and its JSON line written, in frame order, while later frames are
    /// processed. A frame that cannot be decoded is reported (standard error and a JSON line)
    /// and skipped. The output videos have the input's size and frame rate (divided by the
    /// stride) and land only when complete. Returns the video's closing record.
    /// `atOnce` overrides the frames in the network at once (1 when each frame is cut in tiles
    /// that run at once).
    func runVideo(_ picture: InputPicture, stride: Int, atOnce requested: Int? = nil, outputs: [(path: String, kind: VideoWriter.Kind)],
                  process: @escaping (VideoFrame) throws -> FrameResult) throws -> PictureRecord {
        let start = DispatchTime.now().uptimeNanoseconds
        let reader = try VideoReader(contentsOf: picture.path)
        let info = reader.info
        let writers = try outputs.map {
            try VideoWriter(path: $0.path, width: info.width, height: info.height,
                            rate: (info.rate.numerator, info.rate.denominator * stride), kind: $0.kind)
        }
        let expected = info.expectedFrames.map { ($0 + stride - 1) / stride } ?? 0
        let progress = EffBatch.ProgressBar(total: expected, unit: "frames")
        let atOnce = max(1, requested ?? options.batchSize ?? min(Threading.threadCount, 4))
        let threadsEach = max(1, Threading.threadCount / atOnce)
        var processed = 0, corruptInARow = 0
        var corrupt: [Int] = []
        defer { progress.clear() }
        try OrderedStream.run(
            concurrent: atOnce, readAhead: atOnce + 2,
            next: {
                while let item = try reader.next() {
                    switch item {
                    case .frame(let frame) where frame.index % stride == 0: return item
                    case .corrupt(let index, _, _) where index % stride == 0: return item
                    default: continue
                    }
                }
                return nil
            },
            process: { (item: VideoReader.Item) -> FrameResult? in
                guard case .frame(let frame) = item else { return nil }
                return try Threading.withThreadLimit(threadsEach) { try process(frame) }
            },
            deliver: { item, result in
                progress.clear()
                switch item {
                case .frame(let frame):
                    guard let result else { return }
                    for (writer, picture) in zip(writers, result.pictures) {
                        switch picture {
                        case .colour(let image): try writer.append(image)
                        case .gray(let values): try writer.append(gray: values)
                        }
                    }
                    var line = result.json
                    line["image"] = picture.path
                    line["frame"] = frame.index
                    line["time_s"] = (frame.time * 1000).rounded() / 1000
                    try json.add(line)
                    processed += 1
                    corruptInARow = 0
                case .corrupt(let index, let time, let problem):
                    corrupt.append(index)
                    corruptInARow += 1
                    if corruptInARow > corruptFramesInARowAllowed {
                        throw ImageError(.corrupt, picture.path, "\(corruptInARow) frames in a row cannot be decoded (from frame \(index - corruptInARow + 1)): \(problem)")
                    }
                    let position = "frame \(index) (\(String(format: "%.2f", time)) s)"
                    FileHandle.standardError.write(Data("effdense: \(picture.path): \(position): \(EffDenseCommand.oneLine(problem)); skipped\n".utf8))
                    try json.add(["image": picture.path, "frame": index, "time_s": (time * 1000).rounded() / 1000, "error": problem])
                }
                progress.advance()
            })
        guard processed > 0 else { throw ImageError(.corrupt, picture.path, "none of its \(corrupt.count) frames could be decoded") }
        for writer in writers { try writer.finish() }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let rate = Double(processed) / max(seconds, 1e-9)
        FileHandle.standardError.write(Data(("effdense: \(picture.path): \(processed) frames" + (corrupt.isEmpty ? "" : " (\(corrupt.count) corrupt, skipped)")
            + String(format: " in %.1f s, %.2f frames/s\n", seconds, rate)).utf8))
        let written = writers.map { "\($0.path) (\($0.codec))" }
        return PictureRecord(json: [
            "image": picture.path, "frames": processed, "corrupt_frames": corrupt, "width": info.width, "height": info.height,
            "fps": info.framesPerSecond, "vid_stride": stride, "codec": info.codec,
            "outputs": writers.map { ["path": $0.path, "codec": $0.codec] as [String: Any] },
            "seconds": (seconds * 1000).rounded() / 1000, "frames_per_second": (rate * 100).rounded() / 100,
        ], message: "\(picture.path): \(processed) frames" + (written.isEmpty ? "" : " → " + written.joined(separator: ", ")))
    }
}
