import EffCore
import EffImage
import Foundation
import Testing

/// Decoding every PNG colour type / bit depth and JPEG kind against pixels recorded by
/// scripts/make_image_fixtures.py; encoding round trips; and bad files giving clear errors.
@Suite struct ImageCodecTests {
    struct Expected: Decodable {
        let width: Int, height: Int, rgb: [UInt8]
    }

    static let fixtures: URL = Bundle.module.url(forResource: "Fixtures", withExtension: nil)
        ?? URL(fileURLWithPath: "Tests/EffImageTests/Fixtures")

    static let expected: [String: Expected] = {
        guard let data = try? Data(contentsOf: fixtures.appendingPathComponent("expected.json")),
              let table = try? JSONDecoder().decode([String: Expected].self, from: data) else { return [:] }
        return table
    }()

    static func fixture(_ name: String) throws -> Data {
        try Data(contentsOf: fixtures.appendingPathComponent(name))
    }

    static let decodable = ["rgb8.png", "rgba8.png", "gray8.png", "graya8.png", "gray1.png", "palette.png",
                            "gray16.png", "rgb16.png", "rgba16.png", "rgb.jpg", "gray.jpg", "cmyk.jpg"]

    @Test(arguments: decodable)
    func decodesToExpectedRGB(_ name: String) throws {
        let expected = try #require(Self.expected[name], "expected.json has no entry for \(name)")
        let image = try ImageCodec.decode(Self.fixture(name), source: name)
        #expect(image.width == expected.width && image.height == expected.height)
        #expect(image.pixels.count == expected.rgb.count)
        let worst = zip(image.pixels, expected.rgb).map { abs(Int($0) - Int($1)) }.max() ?? 0
        // Lossless files decode exactly; JPEGs match Pillow's decoder (the same libjpeg-turbo
        // algorithms: islow IDCT, fancy upsampling).
        #expect(worst == 0, "\(name): largest pixel difference \(worst)")
    }

    @Test func formatIsRecognisedByContentNotExtension() throws {
        let png = try Self.fixture("rgb8.png")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-\(UUID().uuidString).jpg")
        try png.write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let image = try ImageCodec.decode(contentsOf: path.path)
        #expect(image.width == 7 && image.height == 5)
        #expect(ImageFormat.sniff(png) == .png)
        #expect(ImageFormat.sniff(try Self.fixture("rgb.jpg")) == .jpeg)
    }

    // MARK: Bad input

    static func expectError(_ data: Data, kind: ImageError.Kind, mentioning words: [String] = [], maxPixels: Int = ImageCodec.defaultMaxPixels,
                            sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            let image = try ImageCodec.decode(data, source: "bad/input.file", maxPixels: maxPixels)
            Issue.record("decoded \(image.width)x\(image.height) instead of failing", sourceLocation: sourceLocation)
        } catch let error as ImageError {
            #expect(error.kind == kind, "\(error)", sourceLocation: sourceLocation)
            let message = error.description
            #expect(message.hasPrefix("bad/input.file: "), "error does not name the file: \(message)", sourceLocation: sourceLocation)
            #expect(!message.contains("\n"), "error is not one line: \(message)", sourceLocation: sourceLocation)
            for word in words {
                #expect(message.contains(word), "'\(message)' does not mention '\(word)'", sourceLocation: sourceLocation)
            }
        } catch {
            Issue.record("unexpected error type: \(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func zeroByteFileIsRefused() {
        Self.expectError(Data(), kind: .empty, mentioning: ["empty"])
    }

    @Test func notAnImageIsRefused() {
        Self.expectError(Data("just some text, not a picture\n".utf8), kind: .unknownFormat, mentioning: ["not a picture effdense reads"])
    }

    @Test func truncatedPNGIsRefused() throws {
        let png = try Self.fixture("rgb8.png")
        for cut in [9, 20, 40, png.count / 2, png.count - 13] {
            Self.expectError(png.prefix(cut), kind: .corrupt, mentioning: ["PNG"])
        }
    }

    @Test func corruptPNGIsRefused() throws {
        var png = try Self.fixture("rgb8.png")
        png[png.count / 2] ^= 0xFF  // inside IDAT: the chunk CRC no longer matches
        Self.expectError(png, kind: .corrupt, mentioning: ["corrupt PNG"])
        var header = try Self.fixture("rgb8.png")
        header[17] ^= 0x40  // IHDR width, CRC broken
        Self.expectError(header, kind: .corrupt, mentioning: ["corrupt PNG"])
    }

    @Test func truncatedJPEGIsRefused() throws {
        let jpeg = try Self.fixture("rgb.jpg")
        for cut in [3, 30, jpeg.count / 2, jpeg.count - 2] {
            Self.expectError(jpeg.prefix(cut), kind: .corrupt, mentioning: ["JPEG"])
        }
    }

    @Test func corruptJPEGIsRefused() throws {
        var jpeg = try Self.fixture("rgb.jpg")
        // Overwrite the start-of-frame marker's payload with garbage.
        let sof = try #require((0..<(jpeg.count - 1)).first { jpeg[$0] == 0xFF && jpeg[$0 + 1] == 0xC0 })
        for i in (sof + 2)..<(sof + 12) { jpeg[i] = 0xFF }
        Self.expectError(jpeg, kind: .corrupt, mentioning: ["corrupt JPEG"])
    }

    @Test func hugeHeaderIsRefusedBeforeAllocation() throws {
        let png = try Self.fixture("huge_header.png")
        Self.expectError(png, kind: .tooLarge, mentioning: ["100000x100000", "limit"])
    }

    @Test func pixelLimitIsSettable() throws {
        let png = try Self.fixture("rgb8.png")  // 7 x 5 = 35 pixels
        Self.expectError(png, kind: .tooLarge, mentioning: ["35 pixels"], maxPixels: 34)
        #expect(try ImageCodec.decode(png, source: "ok", maxPixels: 35).width == 7)
    }

    @Test func unreadablePathsNameTheFile() throws {
        #expect(throws: ImageError(.unreadable, "/no/such/picture.png", "cannot read the file (no such file)")) {
            try ImageCodec.decode(contentsOf: "/no/such/picture.png")
        }
        let folder = FileManager.default.temporaryDirectory.path
        #expect(throws: ImageError.self) { try ImageCodec.decode(contentsOf: folder) }
    }

    // MARK: Encoding

    @Test func pngRoundTripsInEveryPixelFormat() throws {
        var rng = SystemRandomNumberGenerator()
        let (w, h) = (13, 6)
        let rgb = (0..<(w * h * 3)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let rgbImage = try RGBImage(width: w, height: h, pixels: rgb)
        #expect(try ImageCodec.decode(ImageCodec.encodePNG(pixels: rgb, width: w, height: h, format: .rgb), source: "rgb") == rgbImage)

        var rgba: [UInt8] = []
        for i in 0..<(w * h) { rgba += [rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], UInt8(i % 256)] }
        #expect(try ImageCodec.decode(ImageCodec.encodePNG(pixels: rgba, width: w, height: h, format: .rgba), source: "rgba") == rgbImage)

        let gray = Array(rgb.prefix(w * h))
        let decodedGray = try ImageCodec.decode(ImageCodec.encodePNG(pixels: gray, width: w, height: h, format: .gray), source: "gray")
        #expect(decodedGray.pixels == gray.flatMap { [$0, $0, $0] })

        let palette: [(UInt8, UInt8, UInt8)] = [(0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0)]
        let indices = (0..<(w * h)).map { UInt8($0 % 4) }
        let encoded = try ImageCodec.encodePNG(pixels: indices, width: w, height: h, format: .palette(palette))
        #expect(encoded[25] == 3, "IHDR colour type should be 3 (palette)")
        #expect(encoded[24] == 8, "IHDR bit depth should be 8")
        let decodedPalette = try ImageCodec.decode(encoded, source: "palette")
        var expectedRGB: [UInt8] = []
        for index in indices {
            let colour = palette[Int(index)]
            expectedRGB += [colour.0, colour.1, colour.2]
        }
        #expect(decodedPalette.pixels == expectedRGB)
    }

    @Test func encodingRejectsBadArguments() {
        #expect(throws: ImageError.self) { try ImageCodec.encodePNG(pixels: [1, 2], width: 2, height: 2, format: .gray) }
        #expect(throws: ImageError.self) { try ImageCodec.encodePNG(pixels: [], width: 0, height: 0, format: .rgb) }
        #expect(throws: ImageError.self) { try ImageCodec.encodePNG(pixels: [0, 5, 1, 1], width: 2, height: 2, format: .palette([(0, 0, 0), (9, 9, 9)])) }
    }

    @Test func writeIsAtomicAndReportsTheFolder() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let target = folder.appendingPathComponent("out.png").path
        let image = RGBImage(width: 3, height: 2, fill: (10, 20, 30))
        try ImageCodec.writePNG(image, to: target)
        #expect(try ImageCodec.decode(contentsOf: target) == image)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["out.png"])
        let missing = folder.appendingPathComponent("nope/out.png").path
        #expect(throws: ImageError.self) { try ImageCodec.writePNG(image, to: missing) }
        #expect(!FileManager.default.fileExists(atPath: missing))
    }

    @Test func tensorConversionNormalises() throws {
        let image = try RGBImage(width: 2, height: 1, pixels: [0, 128, 255, 255, 0, 51])
        let t = try image.tensor(mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5])
        #expect(t.shape == [1, 1, 2, 3])
        #expect(abs(t[0, 0, 0, 0] - -1) < 1e-6)
        #expect(abs(t[0, 0, 0, 2] - 1) < 1e-6)
        #expect(abs(t[0, 0, 1, 2] - -0.6) < 1e-6)
        #expect(throws: TensorError.self) { try image.tensor(mean: [0, 0], std: [1, 1, 1]) }
        let back = try RGBImage(tensor: image.tensor())
        #expect(back == image)
    }
}

/// Resampling against Pillow (scripts/make_image_fixtures.py): the filters timm and torchvision
/// pre-processing use, pixel for pixel.
@Suite struct ResampleTests {
    struct Case: Decodable { let source: String; let width: Int; let height: Int; let filter: String; let rgb: [UInt8] }

    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func source(_ name: String) throws -> RGBImage {
        name == "chelsea.png"
            ? try ImageCodec.decode(contentsOf: packageRoot.appendingPathComponent("samples/chelsea.png").path)
            : try ImageCodec.decode(ImageCodecTests.fixture(name), source: name)
    }

    @Test func matchesPillowResize() throws {
        let data = try Data(contentsOf: ImageCodecTests.fixtures.appendingPathComponent("resize_expected.json"))
        let cases = try JSONDecoder().decode([String: Case].self, from: data)
        #expect(cases.count == 8)
        for (name, c) in cases {
            let filter = try #require(ResampleFilter(rawValue: c.filter))
            let out = try Self.source(c.source).resized(width: c.width, height: c.height, filter: filter)
            let worst = zip(out.pixels, c.rgb).map { abs(Int($0) - Int($1)) }.max() ?? 0
            #expect(out.width == c.width && out.height == c.height && worst == 0, "\(name): largest difference \(worst)")
        }
    }

    @Test func matchesTorchvisionResizeAndCenterCrop() throws {
        let chelsea = try Self.source("chelsea.png")  // 451 x 300
        let resized = try chelsea.resized(width: 384, height: 256, filter: .bicubic)  // int(256 * 451 / 300)
        let cropped = try resized.centerCropped(width: 224, height: 224)
        let expected = try ImageCodec.decode(ImageCodecTests.fixture("chelsea_resize256_crop224.png"), source: "crop")
        #expect(cropped == expected)
    }
}

/// EXIF orientation (scripts/make_exif_fixtures.py): the same 16x8 picture stored for each of the
/// eight orientations comes out as Pillow's exif_transpose shows it.
@Suite struct ExifOrientationTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/exif")

    struct Expected: Decodable { let width: Int, height: Int, corners: [[Int]] }

    @Test(arguments: 1...8)
    func everyOrientationIsShownUpright(orientation: Int) throws {
        let data = try Data(contentsOf: Self.folder.appendingPathComponent("quadrants.json"))
        let expected = try #require(try JSONDecoder().decode([String: Expected].self, from: data)["\(orientation)"])
        let path = Self.folder.appendingPathComponent("quadrants_o\(orientation).jpg").path
        #expect(ImageCodec.orientation(of: try Data(contentsOf: URL(fileURLWithPath: path))) == orientation)
        let image = try ImageCodec.decode(contentsOf: path)
        #expect(image.width == expected.width && image.height == expected.height)
        let corners = [(0, 0), (image.width - 1, 0), (0, image.height - 1), (image.width - 1, image.height - 1)]
        for ((x, y), colour) in zip(corners, expected.corners) {
            let i = (y * image.width + x) * 3
            let found = [Int(image.pixels[i]), Int(image.pixels[i + 1]), Int(image.pixels[i + 2])]
            #expect(zip(found, colour).allSatisfy { abs($0 - $1) <= 3 }, "orientation \(orientation) corner (\(x), \(y)): \(found), Pillow \(colour)")
        }
        // Stored as it is, as Pillow's Image.open reads it: transposing orientations are 8x16.
        let stored = try ImageCodec.decode(contentsOf: path, applyingOrientation: false)
        #expect(stored.width == (orientation >= 5 ? 8 : 16))
    }
}

/// BMP, GIF (first frame), WebP and TIFF through stb_image, libwebp and libtiff
/// (scripts/make_format_fixtures.py): the pixels Pillow decodes, exactly; damaged ones refused.
@Suite struct OtherFormatTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/formats")

    @Test(arguments: ["chelsea.bmp", "chelsea.gif", "chelsea.webp", "chelsea_deflate.tif", "chelsea_lzw.tif", "chelsea_gray.tif", "chelsea_tiled.tif", "chelsea_tiled_gray.tif"])
    func decodesAsPillowDoes(name: String) throws {
        let image = try ImageCodec.decode(contentsOf: Self.folder.appendingPathComponent(name).path)
        let expected = try ImageCodec.decode(contentsOf: Self.folder.appendingPathComponent(name + ".expected.png").path)
        #expect(name.contains("tiled") ? image.width == 70 && image.height == 45 : image.width == 64 && image.height == 48)
        #expect(image == expected, "\(name): pixels differ from Pillow's")
        // Cut short or damaged: a clean error, never a crash.
        if name == "chelsea.bmp" {
            // Found by Fuzz/: a TIFF of 4294967294 x 65536 pixels, whose pixel count passed Int.
            let huge = Self.folder.appendingPathComponent("fuzz_tiff_4g_by_4g.tif").path
            #expect(throws: ImageError.self) { try ImageCodec.decode(contentsOf: huge) }
        }
        let data = try Data(contentsOf: Self.folder.appendingPathComponent(name))
        for broken in [data.prefix(data.count / 2), data.prefix(20), data.prefix(6) + Data(repeating: 0xFF, count: 200)] {
            if let decoded = try? ImageCodec.decode(Data(broken), source: name) {
                #expect(decoded.pixels.count == decoded.width * decoded.height * 3)
            }
        }
    }
}
