import EffImage
import Foundation
import Testing

/// PNGs and JPEGs over the pixel limit are read as a stream of rows (libpng, libjpeg-turbo): any
/// sequence of regions a tiled run asks for — bands going down, a lagging read of the band
/// before, a second pass from the top — equals the same windows of the whole decoded picture;
/// what cannot be streamed and damaged files end in clear errors.
@Suite struct StreamedPictureTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = "Tests/EffImageTests/Fixtures/"

    @Test(arguments: ["samples/chelsea.png", "samples/coffee.jpg", fixtures + "cmyk.jpg", fixtures + "gray8.png", fixtures + "palette.png",
                      fixtures + "rgba16.png", fixtures + "gray.jpg"])
    func regionsEqualTheWholePicture(_ name: String) throws {
        let path = Self.root.appendingPathComponent(name).path
        let streamed = try StreamedPicture(contentsOf: path)
        let whole = try ImageCodec.decode(contentsOf: path, applyingOrientation: false)
        #expect(streamed.width == whole.width && streamed.height == whole.height)
        let tile = min(97, whole.height), step = max(1, tile - 23)
        var regions: [(Int, Int, Int, Int)] = []
        var top = 0
        while true {
            let y = min(top, whole.height - tile)
            for left in stride(from: 0, to: whole.width, by: 64) { regions.append((left, y, min(64, whole.width - left), tile)) }
            if y > 0 { regions.append((0, max(0, y - step), whole.width, tile)) }   // a worker still on the band before
            if y + tile >= whole.height { break }
            top += step
        }
        regions += [(0, 0, whole.width, whole.height), (whole.width - 1, whole.height - 1, 1, 1), (1, 0, whole.width - 1, 2), (0, whole.height / 2, whole.width, 1)]
        for (x, y, w, h) in regions {
            let region = try streamed.read(x: x, y: y, width: w, height: h)
            #expect(region == (try whole.cropped(x: x, y: y, width: w, height: h)), "\(name): region \(w)x\(h) at \(x),\(y)")
        }
        #expect(throws: ImageError.self) { try streamed.read(x: whole.width - 2, y: 0, width: 3, height: 1) }
    }

    @Test func whatCannotBeStreamedIsRefusedWhenOpened() throws {
        for (name, words) in [("chelsea_interlaced.png", "interlaced PNG"), ("chelsea_progressive.jpg", "progressive JPEG"),
                              ("chelsea.webp", "only PNG and JPEG")] {
            let path = Self.root.appendingPathComponent(Self.fixtures + "formats/" + name).path
            #expect(performing: { _ = try StreamedPicture(contentsOf: path) }, throws: { error in
                "\(error)".contains(path) && "\(error)".contains(words)
            })
            // Decoded whole (under the limit), both read as Pillow reads them.
            #expect(throws: Never.self) { _ = try ImageCodec.decode(contentsOf: path) }
        }
    }

    @Test(arguments: ["samples/chelsea.png", "samples/coffee.jpg"])
    func truncatedFilesFailWhereTheDataEnds(_ name: String) throws {
        let data = try Data(contentsOf: Self.root.appendingPathComponent(name))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("effdense-streamed-\(UUID().uuidString)-" + PathTextLast(name)).path
        try data.prefix(data.count * 6 / 10).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        let streamed = try StreamedPicture(contentsOf: path)
        #expect(throws: Never.self) { _ = try streamed.read(x: 0, y: 0, width: streamed.width, height: 8) }
        #expect(performing: { _ = try streamed.read(x: 0, y: streamed.height - 8, width: streamed.width, height: 8) }, throws: { error in
            "\(error)".contains(path) && "\(error)".contains("truncated")
        })
        // The reader stays failed: no read after an error returns pixels.
        #expect(throws: ImageError.self) { _ = try streamed.read(x: 0, y: 0, width: 4, height: 4) }
    }
}

private func PathTextLast(_ path: String) -> String { String(path.split(separator: "/").last ?? "") }
