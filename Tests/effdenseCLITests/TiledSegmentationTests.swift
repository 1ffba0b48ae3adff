import EffCore
import EffDense
import EffImage
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// `segment --tile`: on a 2048 x 2048 mosaic of the sample photos, one tile covering the picture
/// gives exactly the whole-picture mask, a 3 x 3 tiling written as TIFF holds the same classes
/// as written as PNG, and a trained model's tiled mask agrees with its whole-picture mask;
/// damaged TIFFs and a TIFF claiming 10^6 x 10^6 pixels end in one line with nothing written.
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

    /// How closely tiles reproduce the whole picture depends on the model: a trained DeepLabV3+
    /// (scripts/make_tiling_fixture.py: each pixel's colour family, 96% accurate on this mosaic,
    /// every class predicted) run by smp itself tile by tile, each tile's squeeze-and-excitation
    /// and ASPP pooling its own, agrees with its whole-picture mask on 98.7% of the pixels; given
    /// the picture's channel means (taken on a quarter-size copy), on 99.0%. effdense must give
    /// smp's masks all three ways — whole, `--context tile` and the default `--context picture`
    /// — with the same tiles and centre crop, and the default's agreement must reach 99%.
    @Test func tiledMaskIsTheReferenceTilingOfATrainedModel() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let picture = folder.appendingPathComponent("mosaic.png").path
        try Self.mosaic(at: picture)
        let fixtures = CLITests.packageRoot.appendingPathComponent("Tests/EffDenseTests/Fixtures/segmentation")
        let model = fixtures.appendingPathComponent("deeplabv3plus_b0_colours.safetensors").path
        let whole = folder.appendingPathComponent("whole.png").path, tiled = folder.appendingPathComponent("tiled.png").path
        let alone = folder.appendingPathComponent("alone.png").path
        for arguments in [["-o", whole], ["--tile", "1024", "--overlap", "128", "-o", tiled],
                          ["--tile", "1024", "--overlap", "128", "--context", "tile", "-o", alone]] {
            let run = try CLITests.run(["segment", picture, "--weights", model] + arguments)
            #expect(run.status == 0, "\(arguments): \(run.stderr)")
        }
        func mask(_ path: String) throws -> [UInt8] { try ImageCodec.decodeIndexed(contentsOf: path).indices }
        func reference(_ name: String) throws -> [UInt8] { try mask(fixtures.appendingPathComponent(name).path) }
        let ours = (whole: try mask(whole), tiled: try mask(tiled), alone: try mask(alone))
        let smp = (whole: try reference("colours_mosaic_whole.png"), tiled: try reference("colours_mosaic_tiled_1024_128_picture.png"),
                   alone: try reference("colours_mosaic_tiled_1024_128_tile.png"))
        try #require([ours.whole, ours.tiled, ours.alone, smp.whole, smp.tiled, smp.alone].allSatisfy { $0.count == 2048 * 2048 })
        func agreement(_ a: [UInt8], _ b: [UInt8]) -> Double { Double(zip(a, b).filter { $0 == $1 }.count) / Double(a.count) }
        // Float32 against smp's float32 (weights stored as F16, read exactly): near-tied pixels only.
        #expect(agreement(ours.whole, smp.whole) >= 0.9999, "whole picture: \(agreement(ours.whole, smp.whole))")
        #expect(agreement(ours.tiled, smp.tiled) >= 0.9999, "tiled, picture context: \(agreement(ours.tiled, smp.tiled))")
        #expect(agreement(ours.alone, smp.alone) >= 0.9999, "tiled, tile context: \(agreement(ours.alone, smp.alone))")
        #expect(Set(ours.whole).count == 4, "the trained model predicts all four classes")
        // Three tiles an axis, spread evenly: at 0, 512 and 1024; seams at the middles of the overlaps.
        let axis = TileAxis(length: 2048, tile: 1024, overlap: 128, multiple: 16)
        #expect(axis.starts == [0, 512, 1024] && axis.owned.dropFirst().map(\.lowerBound) == [768, 1280])
        #expect(agreement(ours.whole, ours.tiled) >= 0.99, "tiled (picture context) vs whole: \(agreement(ours.whole, ours.tiled))")
        #expect(agreement(ours.whole, ours.tiled) > agreement(ours.whole, ours.alone) + 0.002,
                "the picture's means bring the tiles nearer the whole picture: \(agreement(ours.whole, ours.tiled)) against \(agreement(ours.whole, ours.alone))")
    }

    /// A whole-slide image (an Aperio SVS, through OpenSlide) is segmented in tiles without
    /// --tile, found in a folder by its extension, and its mask is the one of the same pixels
    /// as a PNG (one tile covers this small slide).
    @Test func wholeSlideImageIsSegmentedInTiles() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let formats = CLITests.packageRoot.appendingPathComponent("Tests/EffImageTests/Fixtures/formats")
        let slide = folder.appendingPathComponent("slide.svs").path, png = folder.appendingPathComponent("pixels.png").path
        try FileManager.default.copyItem(atPath: formats.appendingPathComponent("slide_aperio.svs").path, toPath: slide)
        try FileManager.default.copyItem(atPath: formats.appendingPathComponent("slide_aperio.svs.expected.png").path, toPath: png)
        let json = folder.appendingPathComponent("runs.jsonl").path
        let run = try CLITests.run(["segment", folder.path, "--weights", Self.model, "--json", json])
        #expect(run.status == 0, "\(run.stderr)")
        let records = try readRecords(json)
        let slideLine = try #require(records.first { $0["image"] as? String == slide })
        #expect(slideLine["tiles"] as? Int == 1 && slideLine["width"] as? Int == 300 && slideLine["height"] as? Int == 200)
        let mask = try TIFFRegionReader(contentsOf: folder.appendingPathComponent("slide.mask.tif").path)
        let colours = try mask.read(x: 0, y: 0, width: 300, height: 200)
        let indices = try ImageCodec.decodeIndexed(contentsOf: folder.appendingPathComponent("pixels.mask.png").path).indices
        #expect(indices.indices.allSatisfy { i in
            let c = Segmenter.vocPalette[Int(indices[i])]
            return colours.pixels[3 * i] == c.0 && colours.pixels[3 * i + 1] == c.1 && colours.pixels[3 * i + 2] == c.2
        })
        // --resume finds both done: the slide's mask is a .mask.tif (it looked for .mask.png and redid it).
        let again = try CLITests.run(["segment", folder.path, "--weights", Self.model, "--json", json, "--resume"])
        #expect(again.status == 0 && again.stderr.contains("2 skipped"), "\(again.stderr)")
    }

    /// A killed tiled run leaves a journal of its finished bands beside the mask; `--resume`
    /// replays them (no network) and segments the rest: the same mask and overlay, byte for byte,
    /// as a run never killed. The kill comes while the outputs wait to be renamed (test hook);
    /// the journal is then cut inside its second band, as a kill mid-write leaves it.
    @Test func killedTiledRunResumesFromItsFinishedBands() throws {
        let folder = try CLITests.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let picture = folder.appendingPathComponent("mosaic.png").path
        try Self.mosaic(at: picture)
        func arguments(_ name: String) -> [String] {
            ["segment", picture, "--weights", Self.model, "--tile", "512", "--overlap", "64", "-o", folder.appendingPathComponent("\(name).tif").path,
             "--overlay", folder.appendingPathComponent("\(name).overlay.png").path, "--json", folder.appendingPathComponent("\(name).jsonl").path]
        }
        let reference = try CLITests.run(arguments("reference"))
        #expect(reference.status == 0, "\(reference.stderr)")

        let process = Process()
        process.executableURL = CLITests.binary
        process.arguments = arguments("resumed")
        process.environment = ProcessInfo.processInfo.environment.merging(["EFFDENSE_TEST_PAUSE_BEFORE_RENAME_MS": "20000"]) { $1 }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline, !((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).contains(where: { $0.contains("overlay.png.effdense-partial") }) {
            usleep(20_000)
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let journal = folder.appendingPathComponent(".resumed.tif.effdense-bands").path
        var data = try Data(contentsOf: URL(fileURLWithPath: journal))
        let header = try #require(data.firstIndex(of: 10)) + 1
        let firstLength = Int(data[(header + 24)..<(header + 32)].withUnsafeBytes { $0.loadUnaligned(as: Int64.self) })
        data = data.prefix(header + 32 + firstLength + 40)
        try data.write(to: URL(fileURLWithPath: journal))

        let resumed = try CLITests.run(arguments("resumed") + ["--resume"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let line = try readRecords(folder.appendingPathComponent("resumed.jsonl").path).first
        #expect(line?["resumed_bands"] as? Int == 1 && line?["tiles"] as? Int == 25, "\(String(describing: line))")
        for name in ["tif", "overlay.png"] {
            #expect(FileManager.default.contentsEqual(atPath: folder.appendingPathComponent("reference.\(name)").path,
                                                      andPath: folder.appendingPathComponent("resumed.\(name)").path), "\(name)")
        }
        let left = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasPrefix(".") }
        #expect(left.isEmpty, "left behind: \(left)")
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
