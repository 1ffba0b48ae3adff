import EffImage
import Foundation
import Testing

/// Large TIFFs region by region: any region of a striped, a tiled and a gray TIFF equals the
/// same window of the whole picture (Pillow's decoding, scripts/make_format_fixtures.py); masks
/// written as tiled palette TIFFs read back as their colours; damaged files end in errors.
@Suite struct LargeTIFFTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/formats")

    @Test(arguments: ["chelsea_deflate.tif", "chelsea_lzw.tif", "chelsea_gray.tif", "chelsea_tiled.tif", "chelsea_tiled_gray.tif"])
    func regionsEqualTheWholePicture(name: String) throws {
        let path = Self.folder.appendingPathComponent(name).path
        let reader = try TIFFRegionReader(contentsOf: path)
        let whole = try ImageCodec.decode(contentsOf: path + ".expected.png")
        #expect(reader.width == whole.width && reader.height == whole.height)
        #expect((reader.tileSize != nil) == name.contains("tiled"))
        var generator = SystemRandomNumberGenerator()
        // Regions in an order that defeats the one-tile cache, corners and single pixels included.
        let (width, height) = (whole.width, whole.height)
        var regions: [(Int, Int, Int, Int)] = [(0, 0, width, height), (0, 0, 1, 1), (width - 1, height - 1, 1, 1), (3, 5, 17, 33)]
        for _ in 0..<20 {
            let w = Int.random(in: 1...whole.width, using: &generator), h = Int.random(in: 1...whole.height, using: &generator)
            regions.append((Int.random(in: 0...(whole.width - w), using: &generator), Int.random(in: 0...(whole.height - h), using: &generator), w, h))
        }
        for (x, y, w, h) in regions {
            let region = try reader.read(x: x, y: y, width: w, height: h)
            #expect(region == (try whole.cropped(x: x, y: y, width: w, height: h)), "\(name): region \(w)x\(h) at \(x),\(y)")
        }
        #expect(throws: ImageError.self) { try reader.read(x: whole.width - 2, y: 0, width: 3, height: 1) }
    }

    @Test func maskWrittenAsTiledPaletteTIFFReadsBack() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-tiff-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (width, height) = (700, 600)
        let palette: [(UInt8, UInt8, UInt8)] = (0..<256).map { (i: Int) -> (UInt8, UInt8, UInt8) in
            (UInt8(i), UInt8(255 - i), UInt8((i * 7) % 256))
        }
        var mask = [UInt8](repeating: 0, count: width * height)
        for i in mask.indices { mask[i] = UInt8((i % width / 50 + i / width / 40) % 21) }
        let path = folder.appendingPathComponent("mask.tif").path
        let writer = try TIFFMaskWriter(path: path, width: width, height: height, palette: palette)
        // Rows in uneven pieces, as bands of a tiled run arrive.
        var row = 0
        for count in [1, 255, 256, 44, 44] {
            let n = min(count, height - row)
            try writer.add(rows: Array(mask[(row * width)..<((row + n) * width)]))
            row += n
        }
        #expect(!FileManager.default.fileExists(atPath: path), "the mask appeared before it was finished")
        try writer.finish()
        let reader = try TIFFRegionReader(contentsOf: path)
        #expect(reader.width == width && reader.height == height && reader.tileSize?.width == 256)
        let colours = try reader.read(x: 0, y: 0, width: width, height: height)
        for i in stride(from: 0, to: mask.count, by: 97) {
            let c = palette[Int(mask[i])]
            #expect(colours.pixels[3 * i] == c.0 && colours.pixels[3 * i + 1] == c.1 && colours.pixels[3 * i + 2] == c.2, "pixel \(i)")
        }
        // A writer given up leaves nothing.
        let abandoned = folder.appendingPathComponent("gone.tif").path
        let unfinished = try TIFFMaskWriter(path: abandoned, width: width, height: height, palette: palette)
        try unfinished.add(rows: Array(mask[0..<(width * 10)]))
        unfinished.abandon()
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["mask.tif"])
    }

    @Test func damagedTIFFsAreErrors() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-tiff-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let tiled = try Data(contentsOf: Self.folder.appendingPathComponent("chelsea_tiled.tif"))
        // Cut in half: the header and directory may be at the end (Pillow writes it last) or the
        // tiles' data missing: either way an error, never a crash.
        let truncated = folder.appendingPathComponent("truncated.tif").path
        try tiled.prefix(tiled.count / 2).write(to: URL(fileURLWithPath: truncated))
        do {
            let reader = try TIFFRegionReader(contentsOf: truncated)
            _ = try reader.read(x: 0, y: 0, width: reader.width, height: reader.height)
            Issue.record("a truncated TIFF was read")
        } catch let error as ImageError {
            #expect(error.source == truncated)
        }
        #expect(throws: ImageError.self) { try TIFFRegionReader(contentsOf: folder.appendingPathComponent("missing.tif").path) }
        let notTIFF = folder.appendingPathComponent("text.tif").path
        try Data("hello".utf8).write(to: URL(fileURLWithPath: notTIFF))
        #expect(throws: ImageError.self) { try TIFFRegionReader(contentsOf: notTIFF) }
    }
}
