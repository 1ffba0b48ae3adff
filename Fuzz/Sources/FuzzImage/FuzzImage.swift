import EffImage
import Foundation

/// libFuzzer entry point: decode arbitrary bytes as a picture. Any outcome but a crash, a sanitizer
/// report or a hang is fine: a picture, or an `ImageError`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    // A lower pixel limit than the CLI's keeps each run fast; the limit check itself is fuzzed.
    if let image = try? ImageCodec.decode(data, source: "fuzz", maxPixels: 4_000_000) {
        precondition(image.pixels.count == image.width * image.height * 3, "decoded pixel count disagrees with the size")
    }
    return 0
}
