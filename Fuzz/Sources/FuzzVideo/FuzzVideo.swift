import EffImage
import EffVideo
import Foundation

/// The file each input is written to: FFmpeg reads a path, as the CLI does.
let inputPath = NSTemporaryDirectory() + "effdense-fuzz-video-\(getpid())"

/// libFuzzer entry point: recognise arbitrary bytes as a video or not (VideoFile.isVideo), open
/// them as one (VideoReader, frames up to 1 megapixel) and decode up to 12 frames, as detect and
/// segment do. Any outcome but a crash, a sanitizer report, a hang or a memory blow-up is fine:
/// frames, corrupt frames skipped, or an `ImageError`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzVideo(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    guard FileManager.default.createFile(atPath: inputPath, contents: data) else { return 0 }
    _ = VideoFile.isVideo(atPath: inputPath)
    guard let reader = try? VideoReader(contentsOf: inputPath, maxPixels: 1 << 20) else { return 0 }
    for _ in 0..<12 {
        guard let item = try? reader.next() else { break }
        if case .frame(let frame) = item {
            precondition(frame.image.width == reader.info.width && frame.image.height == reader.info.height, "frame size disagrees with the stream's")
        }
    }
    return 0
}
