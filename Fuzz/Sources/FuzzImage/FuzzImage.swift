import EffImage
import Foundation

/// The file each input is also written to, for the row-by-row readers (they read a path).
let inputPath = NSTemporaryDirectory() + "effdense-fuzz-image-\(getpid())"

/// libFuzzer entry point: decode arbitrary bytes as a picture, and read them as a stream of rows
/// (StreamedPicture, for PNGs and JPEGs over the pixel limit): the top rows, a region at the
/// bottom, then the top again (a second pass). Any outcome but a crash, a sanitizer report or a
/// hang is fine: pixels, or an `ImageError`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    // A lower pixel limit than the CLI's keeps each run fast; the limit check itself is fuzzed.
    if let image = try? ImageCodec.decode(data, source: "fuzz", maxPixels: 4_000_000) {
        precondition(image.pixels.count == image.width * image.height * 3, "decoded pixel count disagrees with the size")
    }
    guard [ImageFormat.png, .jpeg].contains(ImageFormat.sniff(data)), FileManager.default.createFile(atPath: inputPath, contents: data),
          let streamed = try? StreamedPicture(contentsOf: inputPath) else { return 0 }
    let width = min(streamed.width, 128), height = min(streamed.height, 16)
    for y in [0, min(streamed.height - height, 64), 0] {
        guard let region = try? streamed.read(x: streamed.width - width, y: y, width: width, height: height) else { break }
        precondition(region.pixels.count == width * height * 3, "region pixel count disagrees with its size")
    }
    return 0
}
