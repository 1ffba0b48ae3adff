import EffCore
import EffDense
import EffImage
import Foundation
import Testing

/// `segment --tile`: on a 2048 x 2048 mosaic of the sample photos, one tile covering the picture
/// gives exactly the whole-picture mask, and a 3 x 3 tiling written as TIFF holds the same classes
/// as written as PNG; damaged TIFFs and a TIFF claiming 10^6 x 10^6 pixels end in one line with
/// nothing written. (How closely a 3 x 3 tiling agrees with the whole picture depends on the
/// model: the random-weight fixture's near-tied logits make it a poor judge, see the note.)
@Suite struct TiledSegmentationTests {
    static let model = SegmentCLITests.weights

    /// The four samples, each resized to 1024 x 1024, in a 2 x 2 mosaic.
    static func mosaic(at path: String) throws {
        var pixels = [UInt8](repeating: 0, count: 2048 * 2048 * 3)
        for (i, name) in ["astronaut.jpg", "coffee.jpg", "chelsea.png", "rocket.jpg"].enumerated() {
            let photo = try ImageCodec.decode(contentsOf: CLITests.packageRoot.appendingPathComponent("samples/\(name)").path)
                .resized(width: 1024, height: 1024, filter: .bicubic)
            let (left, top) = ((i % 2) * 1024, (i / 2) * 1024)
            for y in 0..<1024 {
                pixels.replaceSubrange(((top + y) * 2048 + left) * 3..<((top + y) * 2048 + left + 1024) * 3,
                                       with: photo.pixels[(y * 1024 * 3)..<((y + 1) * 1024 * 3)])
            }
        }
        try ImageCodec.writePNG(pixels: pixels, width: 2048, height: 2048, format: .rgb, to: path)
    }

    @Test func tilesFitTogether() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let picture = folder.appendingPathComponent("mosaic.png").path
        try Self.mosaic(at: picture)
        let whole = folder.appendingPathComponent("whole.png").path, single = folder.appendingPathComponent("single.png").path
        let tiled = folder.appendingPathComponent("tiled.png").path, tiff = folder.appendingPathComponent("tiled.tif").path
        let overlay = folder.appendingPathComponent("overlay.png").path, json = folder.appendingPathComponent("t.jsonl").path
        for arguments in [["-o", whole], ["--tile", "2048", "-o", single], ["--tile", "1024", "--overlap", "128", "-o", tiled],
                          ["--tile", "1024", "--overlap", "128", "-o", tiff, "--overlay", overlay, "--json", json]] {
            let run = try CLITests.run(["segment", picture, "--weights", Self.model] + arguments)
            #expect(run.status == 0, "\(arguments): \(run.stderr)")
        }
        #expect(try ImageCodec.decodeIndexed(contentsOf: single).indices == ImageCodec.decodeIndexed(contentsOf: whole).indices,
                "one tile over the whole picture is the whole-picture mask")
        let b = try ImageCodec.decodeIndexed(contentsOf: tiled).indices
        // The TIFF holds the tiled mask's classes, in the VOC palette's colours.
        let reader = try TIFFRegionReader(contentsOf: tiff)
        #expect(reader.width == 2048 && reader.height == 2048)
        let colours = try reader.read(x: 0, y: 0, width: 2048, height: 2048)
        var mismatches = 0
        for i in b.indices {
            let c = Segmenter.vocPalette[Int(b[i])]
            if colours.pixels[3 * i] != c.0 || colours.pixels[3 * i + 1] != c.1 || colours.pixels[3 * i + 2] != c.2 { mismatches += 1 }
        }
        #expect(mismatches == 0)
        let preview = try ImageCodec.decode(contentsOf: overlay)
        #expect(max(preview.width, preview.height) >= 2048, "the overlay keeps the picture (2048 px) and adds its legend")
        let line = try readRecords(json).first
        #expect(line?["tiles"] as? Int == 9 && line?["mask"] as? String == tiff, "\(String(describing: line))")
        let counted = (line?["classes"] as? [[String: Any]] ?? []).reduce(0) { $0 + ($1["pixels"] as? Int ?? 0) }
        #expect(counted == 2048 * 2048)
    }

    @Test func damagedAndEmptyTIFFsEndInOneLineAndLeaveNothing() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // A little-endian TIFF whose directory claims 1,000,000 x 1,000,000 RGB pixels in strips
        // of 16 rows, with one strip offset pointing past the end of the file.
        var bytes: [UInt8] = Array("II".utf8) + [42, 0, 8, 0, 0, 0]
        let entries: [(UInt16, UInt16, UInt32, UInt32)] = [
            (256, 4, 1, 1_000_000), (257, 4, 1, 1_000_000), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
            (273, 4, 1, 1_000_000), (277, 3, 1, 3), (278, 4, 1, 16), (279, 4, 1, 48_000_000),
        ]
        bytes += withUnsafeBytes(of: UInt16(entries.count).littleEndian, Array.init)
        for (tag, type, count, value) in entries {
            bytes += withUnsafeBytes(of: tag.littleEndian, Array.init) + withUnsafeBytes(of: type.littleEndian, Array.init)
            bytes += withUnsafeBytes(of: count.littleEndian, Array.init)
            bytes += type == 3 ? withUnsafeBytes(of: UInt16(value).littleEndian, Array.init) + [0, 0] : withUnsafeBytes(of: value.littleEndian, Array.init)
        }
        bytes += [0, 0, 0, 0]
        let claiming = folder.appendingPathComponent("claims.tif").path
        try Data(bytes).write(to: URL(fileURLWithPath: claiming))
        let truncated = folder.appendingPathComponent("truncated.tif").path
        let tiled = try Data(contentsOf: CLITests.packageRoot.appendingPathComponent("Tests/EffImageTests/Fixtures/formats/chelsea_tiled.tif"))
        try tiled.prefix(tiled.count * 2 / 3).write(to: URL(fileURLWithPath: truncated))
        for file in [claiming, truncated] {
            let out = folder.appendingPathComponent("out").path
            let run = try CLITests.run(["segment", file, "--weights", Self.model, "--tile", "256", "--overlap", "32", "--out-dir", out])
            CLITests.expectOneLineError(run, naming: file)
            let left = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
            #expect(left.isEmpty, "\(file): left \(left)")
        }
    }
}
