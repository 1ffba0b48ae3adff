import EffBatch
import EffCore
import EffDense
import EffImage
import Foundation

/// `effdense segment --tile N` and TIFFs over the pixel limit: the picture read region by
/// region, segmented in tiles, the mask streamed into a tiled palette TIFF (or a PNG when -o
/// names one and it fits the pixel limit), and, with --overlay, a downscaled overlay.
extension SegmentCommand {
    /// The longer side of the overlay written in tiled mode.
    static let previewSide = 2048

    /// `model`: what identifies the model (its files' paths, sizes and times), for `--resume`
    /// to continue only a run of the same model.
    static func segmentTiled(_ picture: InputPicture, tiled: TiledSegmenter, run: PictureRun, output: String?,
                             overlay: String?, text: TextRenderer?, model: String) throws -> PictureRecord {
        let source = try LargePicture.source(picture.path, wholeTIFFs: true).source
        let (width, height) = (source.width, source.height)
        let target = try run.outputPath(picture, suffix: ".mask.tif", explicit: output)
        let asPNG = target.lowercased().hasSuffix(".png")
        if asPNG && width * height > ImageCodec.defaultMaxPixels {
            throw ImageError(.tooLarge, target, "a PNG mask holds at most \(ImageCodec.defaultMaxPixels) pixels, this one \(width)x\(height): name a .tif")
        }
        let overlayTarget = try overlay.map { try run.outputPath(picture, suffix: ".overlay.png", explicit: $0) }
        let writer = asPNG ? nil : try TIFFMaskWriter(path: target, width: width, height: height, palette: Segmenter.vocPalette)
        var wholeMask = asPNG ? [UInt8](repeating: 0, count: width * height) : []
        let preview = overlayTarget == nil ? nil : OverlayPreview(width: width, height: height, longerSide: previewSide)
        let (columns, rows) = tiled.axes(width: width, height: height)
        let contextTiles = tiled.contextTiles(width: width, height: height)
        // The context pass's tiles (a quarter of the pixels, the encoder only) count in the bar too.
        let bar = EffBatch.ProgressBar(total: columns.tiles.count * rows.tiles.count + contextTiles, unit: "tiles")
        defer { bar.clear() }
        var histogram: [Int] = []
        // A killed run of this picture left the bands it finished: --resume continues after them.
        let journal = BandJournal(for: target, identity: "effdense bands 2 | \(InputCollector.canonical(picture.path)) | \(width)x\(height) | tile \(tiled.tile) overlap \(tiled.overlap) context \(tiled.context.rawValue) | \(model)")
        var resumedBands = 0
        do {
            let finished = try journal.open(resume: run.options.resume)
            resumedBands = finished.count
            histogram = try tiled.segment(source, finished: finished, deliver: { band in
                try journal.append(band)
                try writer?.add(rows: band.mask)
                if asPNG { wholeMask.replaceSubrange((band.rows.lowerBound * width)..<(band.rows.upperBound * width), with: band.mask) }
                preview?.add(band)
            }, tileDone: { x, y, pixels, columns, rows in
                preview?.add(pixels, x: x, y: y, columns: columns, rows: rows)
                bar.advance()
            }, contextTileDone: { bar.advance() })
        } catch let shortage as MemoryShortage {
            writer?.abandon()
            journal.remove()
            throw ImageError(.tooLarge, picture.path, "\(shortage) for one \(columns.tile)x\(rows.tile) tile: pass a smaller --tile")
        } catch {
            writer?.abandon()
            journal.remove()
            throw error
        }
        let total = Double(width * height)
        let present = histogram.enumerated().filter { $0.element > 0 }.map { (classIndex: $0.offset, pixels: $0.element) }
            .sorted { $0.pixels > $1.pixels || ($0.pixels == $1.pixels && $0.classIndex < $1.classIndex) }
        // The mask and the overlay land together: the overlay first, the mask's rename last.
        var files: [(data: Data, path: String)] = []
        if asPNG {
            files.append((try ImageCodec.encodePNG(pixels: wholeMask, width: width, height: height, format: .palette(Segmenter.vocPalette)), target))
        }
        if let overlayTarget, let text, let preview {
            // The legend shows the whole mask's fractions, in the preview's pixel count.
            let scale = Double(preview.mask.classes.count) / total
            let legend = present.map { (classIndex: $0.classIndex, pixels: max(1, Int((Double($0.pixels) * scale).rounded()))) }
            let blended = SegmentCommand.overlay(preview.picture, mask: preview.mask, present: legend, segmenter: tiled.segmenter, text: text)
            files.append((try ImageCodec.encodePNG(pixels: blended.pixels, width: blended.width, height: blended.height, format: .rgb), overlayTarget))
        }
        try ImageCodec.writeFiles(files)
        do {
            try writer?.finish()
        } catch {
            for file in files { unlink(file.path) }
            journal.remove()
            throw error
        }
        journal.remove()
        let summary = present.prefix(5).map { "\(tiled.segmenter.label($0.classIndex)) \(String(format: "%.1f", Double($0.pixels) / total * 100))%" }
        return PictureRecord(json: [
            "image": picture.path, "width": width, "height": height, "mask": target,
            "tiles": columns.tiles.count * rows.tiles.count, "tile": tiled.tile, "overlap": tiled.overlap,
            "context": tiled.context.rawValue, "context_tiles": contextTiles,
            "resumed_bands": resumedBands,
            "classes": json(present, of: width * height, labelledBy: tiled.segmenter),
        ], message: "\(picture.path): \(summary.joined(separator: ", ")) → \(target)")
    }
}

/// A downscaled copy of a large picture and its mask (nearest pixel), filled tile by tile and
/// band by band, for the overlay of a tiled run.
final class OverlayPreview: @unchecked Sendable {
    let scale: Double
    private(set) var picture: RGBImage
    private(set) var mask: SegmentationMask
    private let lock = NSLock()

    init(width: Int, height: Int, longerSide: Int) {
        scale = min(1, Double(longerSide) / Double(max(width, height)))
        let w = max(1, Int((Double(width) * scale).rounded())), h = max(1, Int((Double(height) * scale).rounded()))
        picture = RGBImage(width: w, height: h, fill: (0, 0, 0))
        mask = SegmentationMask(width: w, height: h, classes: [UInt8](repeating: 0, count: w * h))
    }

    /// The preview pixels whose source pixel lies in `columns` x `rows`, from a tile at x, y.
    func add(_ tile: RGBImage, x: Int, y: Int, columns: Range<Int>, rows: Range<Int>) {
        lock.withLock {
            for (py, sourceRow) in sources(rows, count: picture.height) {
                for (px, sourceColumn) in sources(columns, count: picture.width) {
                    let from = ((sourceRow - y) * tile.width + (sourceColumn - x)) * 3, to = (py * picture.width + px) * 3
                    picture.pixels[to] = tile.pixels[from]
                    picture.pixels[to + 1] = tile.pixels[from + 1]
                    picture.pixels[to + 2] = tile.pixels[from + 2]
                }
            }
        }
    }

    /// The preview's mask rows that the band decides.
    func add(_ band: TiledSegmenter.Band) {
        lock.withLock {
            let sourceWidth = band.mask.count / max(1, band.rows.count)
            for (py, sourceRow) in sources(band.rows, count: picture.height) {
                for px in 0..<picture.width {
                    let sourceColumn = min(Int((Double(px) + 0.5) / scale), sourceWidth - 1)
                    mask.classes[py * picture.width + px] = band.mask[(sourceRow - band.rows.lowerBound) * sourceWidth + sourceColumn]
                }
            }
        }
    }

    /// Preview indices (0..<count) whose nearest source index falls in `range`, with that index.
    private func sources(_ range: Range<Int>, count: Int) -> [(Int, Int)] {
        let first = max(0, Int((Double(range.lowerBound) * scale).rounded(.down)) - 1)
        let last = min(count - 1, Int((Double(range.upperBound) * scale).rounded(.up)) + 1)
        guard first <= last else { return [] }
        return (first...last).compactMap { p in
            let source = Int((Double(p) + 0.5) / scale)
            return range.contains(source) ? (p, source) : nil
        }
    }
}
