import EffImage
import Foundation
import Testing

/// Whole-slide images of vendor formats through OpenSlide: an Aperio SVS (scripts/
/// make_format_fixtures.py, tifffile) is recognised as a slide — a plain tiled TIFF is not — and any
/// region equals the same window of level 0 as Pillow decodes it; a damaged slide ends in errors.
@Suite struct WholeSlideTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/formats")

    @Test func aperioSlideRegionsEqualLevelZero() throws {
        let path = Self.folder.appendingPathComponent("slide_aperio.svs").path
        #expect(WholeSlideReader.vendor(of: path) == "aperio")
        #expect(WholeSlideReader.vendor(of: Self.folder.appendingPathComponent("chelsea_tiled.tif").path) == nil, "a plain TIFF stays libtiff's")
        #expect(WholeSlideReader.vendor(of: Self.folder.appendingPathComponent("chelsea.webp").path) == nil)
        let slide = try WholeSlideReader(contentsOf: path)
        let whole = try ImageCodec.decode(contentsOf: path + ".expected.png")
        #expect(slide.width == whole.width && slide.height == whole.height)
        var generator = SystemRandomNumberGenerator()
        var regions: [(Int, Int, Int, Int)] = [(0, 0, whole.width, whole.height), (0, 0, 1, 1), (whole.width - 1, whole.height - 1, 1, 1), (60, 60, 70, 9)]
        for _ in 0..<20 {
            let w = Int.random(in: 1...whole.width, using: &generator), h = Int.random(in: 1...whole.height, using: &generator)
            regions.append((Int.random(in: 0...(whole.width - w), using: &generator), Int.random(in: 0...(whole.height - h), using: &generator), w, h))
        }
        for (x, y, w, h) in regions {
            #expect(try slide.read(x: x, y: y, width: w, height: h) == whole.cropped(x: x, y: y, width: w, height: h), "region \(w)x\(h) at \(x),\(y)")
        }
        #expect(throws: ImageError.self) { try slide.read(x: whole.width - 2, y: 0, width: 3, height: 1) }
    }

    @Test func damagedSlideEndsInAnError() throws {
        let data = try Data(contentsOf: Self.folder.appendingPathComponent("slide_aperio.svs"))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-slide-\(UUID().uuidString).svs").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        // The directories stay (tifffile writes them first); level 0's tiles past the middle are cut off.
        try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: path))
        #expect(performing: {
            let slide = try WholeSlideReader(contentsOf: path)
            _ = try slide.read(x: 0, y: 0, width: slide.width, height: slide.height)
        }, throws: { error in "\(error)".contains(path) && "\(error)".contains("slide") })
    }
}
