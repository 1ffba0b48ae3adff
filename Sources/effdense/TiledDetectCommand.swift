import EffBatch
import EffCore
import EffDense
import EffImage
import Foundation

/// `effdense detect --tile N` and TIFFs over the pixel limit: SAHI-style sliced detection, boxes
/// merged across tiles, drawn on the picture (or, for one too large to decode, on a downscaled
/// copy of it).
extension DetectCommand {
    /// The longer side of the annotated copy of a picture too large to decode whole.
    static let previewSide = 2048

    static func detectTiled(_ picture: InputPicture, tiled: TiledDetector, fullPass: Bool, postProcessing: PostProcessing,
                            wanted: Set<Int>?, run: PictureRun, output: String?, text: TextRenderer?, style: AnnotationStyle,
                            model: String) throws -> PictureRecord {
        let (source, decoded) = try LargePicture.source(picture.path)
        let columns = TileAxis(length: source.width, tile: tiled.tile, overlap: tiled.overlap)
        let rows = TileAxis(length: source.height, tile: tiled.tile, overlap: tiled.overlap)
        let bar = EffBatch.ProgressBar(total: columns.starts.count * rows.starts.count, unit: "tiles")
        let detections: [Detection]
        do {
            defer { bar.clear() }
            detections = try tiled.detect(source, wholePicture: fullPass ? decoded : nil, postProcessing: postProcessing,
                                          tileDone: { bar.advance() }).filter { wanted?.contains($0.classIndex) ?? true }
        } catch let shortage as MemoryShortage {
            throw ImageError(.tooLarge, picture.path, "\(shortage) for one tile: pass a smaller --tile")
        }
        var target: String?
        if let text {
            // On the picture itself, or on a copy with its longer side at previewSide.
            var canvas = try decoded ?? downscaled(source, longerSide: previewSide)
            let scale = Float(canvas.width) / Float(source.width)
            let drawn = detections.map { Detection(box: $0.box.map { $0 * scale }, score: $0.score, classIndex: $0.classIndex) }
            canvas.annotate(tiled.detector.annotations(drawn), text: text, style: style)
            let path = try run.outputPath(picture, suffix: ".detections.png", explicit: output)
            try ImageCodec.writePNG(canvas, to: path)
            target = path
        }
        return PictureRecord(json: [
            "image": picture.path, "width": source.width, "height": source.height, "model": model,
            "tiles": columns.starts.count * rows.starts.count, "tile": tiled.tile, "overlap": tiled.overlap,
            "detections": json(detections, labelledBy: tiled.detector),
        ], message: "\(picture.path): \(detections.count) detections in \(columns.starts.count * rows.starts.count) tiles" + (target.map { " → \($0)" } ?? ""))
    }

    /// A copy of a large picture with its longer side at `longerSide` (nearest pixel), read in
    /// regions of at most 4096 x 512 pixels.
    static func downscaled(_ source: PixelSource, longerSide: Int) throws -> RGBImage {
        let scale = min(1, Double(longerSide) / Double(max(source.width, source.height)))
        let width = max(1, Int((Double(source.width) * scale).rounded())), height = max(1, Int((Double(source.height) * scale).rounded()))
        var out = RGBImage(width: width, height: height, fill: (0, 0, 0))
        let sourceX = (0..<width).map { min(source.width - 1, Int((Double($0) + 0.5) / scale)) }
        let sourceY = (0..<height).map { min(source.height - 1, Int((Double($0) + 0.5) / scale)) }
        for top in stride(from: 0, to: source.height, by: 512) {
            let bandHeight = min(512, source.height - top)
            let outRows = sourceY.indices.filter { (top..<(top + bandHeight)).contains(sourceY[$0]) }
            guard !outRows.isEmpty else { continue }
            for left in stride(from: 0, to: source.width, by: 4096) {
                let chunkWidth = min(4096, source.width - left)
                let outColumns = sourceX.indices.filter { (left..<(left + chunkWidth)).contains(sourceX[$0]) }
                guard !outColumns.isEmpty else { continue }
                let region = try source.read(x: left, y: top, width: chunkWidth, height: bandHeight)
                for y in outRows {
                    for x in outColumns {
                        let from = ((sourceY[y] - top) * chunkWidth + (sourceX[x] - left)) * 3, to = (y * width + x) * 3
                        out.pixels[to] = region.pixels[from]
                        out.pixels[to + 1] = region.pixels[from + 1]
                        out.pixels[to + 2] = region.pixels[from + 2]
                    }
                }
            }
        }
        return out
    }
}
