import EffImage
import Foundation

/// The file each input is written to: libtiff reads a path, as the CLI's large-picture mode does.
let inputPath = NSTemporaryDirectory() + "effdense-fuzz-tiff-\(getpid()).tif"

/// libFuzzer entry point: open arbitrary bytes as a large TIFF (TIFFRegionReader) and read three
/// regions of it — the top-left corner, one ending at the bottom-right corner, one in the middle —
/// as tiled detection and segmentation do. Any outcome but a crash, a sanitizer report, a hang or
/// a memory blow-up is fine: regions, or an `ImageError`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTIFF(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let data = start.map { Data(bytes: $0, count: count) } ?? Data()
    guard FileManager.default.createFile(atPath: inputPath, contents: data),
          let reader = try? TIFFRegionReader(contentsOf: inputPath) else { return 0 }
    let width = min(reader.width, 192), height = min(reader.height, 192)
    for (x, y) in [(0, 0), (reader.width - width, reader.height - height), (reader.width / 2, reader.height / 2)] {
        guard let region = try? reader.read(x: x, y: y, width: min(width, reader.width - x), height: min(height, reader.height - y)) else { continue }
        precondition(region.pixels.count == region.width * region.height * 3, "region pixel count disagrees with its size")
    }
    return 0
}
