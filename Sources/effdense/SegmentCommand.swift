import ArgumentParser
import EffBatch
import EffCore
import EffDense
import EffImage
import EffVideo
import EffWeights
import Foundation

extension TiledSegmenter.Context: ExpressibleByArgument {}

struct SegmentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Semantic segmentation with DeepLabV3+ (segmentation_models_pytorch checkpoints); writes palette PNG masks.")

    @OptionGroup var inputs: BatchOptions

    @OptionGroup var segmenter: SegmenterOptions

    @Option(name: .shortAndLong, help: "Mask PNG to write (one input only); for a video, the mask video (lossless FFV1 in .mkv, class indices as gray).")
    var output: String?

    @Option(help: "Folder for masks (IMG.mask.png each, VIDEO.mask.mkv for videos, mirroring the input folders).")
    var outDir: String?

    @Option(help: "Also write the picture blended with the class colours and a legend (one input only); for a video, an overlay video (.mp4...).")
    var overlay: String?

    @Option(help: "Write JSON Lines to FILE ('-' for standard output).")
    var json: String?

    @Option(help: ArgumentHelp("Segment in tiles of N x N pixels, read region by region (automatic for TIFFs, PNGs and JPEGs over 100 megapixels, tile 1024); the mask is written as IMG.mask.tif (a tiled palette TIFF) unless -o names a .png.", valueName: "N"))
    var tile: Int?

    @Option(help: "Pixels shared by neighbouring tiles (at least; the tiles are spread evenly); each pixel is decided by the tile it is most central in.")
    var overlap = 128

    @Option(help: "What the network's global pools (squeeze-and-excitation, ASPP image pooling) see in a tile: picture (the whole picture's channel means, taken first on a copy at a quarter of its size: tiles then decide as the whole picture would) or tile (each tile alone, as smp run tile by tile).")
    var context: TiledSegmenter.Context = .picture

    @OptionGroup var videos: VideoOptions

    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        let manyInputs = inputs.images.count + (inputs.inputList == nil ? 0 : 1) > 1
        if output != nil && manyInputs { throw ValidationError("-o takes one input; use --out-dir") }
        if overlay != nil && manyInputs { throw ValidationError("--overlay takes one input") }
        if output != nil && outDir != nil { throw ValidationError("give -o or --out-dir, not both") }
        if tile != nil && segmenter.size != nil { throw ValidationError("give --size (a smaller copy of the picture) or --tile, not both") }
        if let tile, !(64...8192).contains(tile) { throw ValidationError("--tile must be within 64...8192, found \(tile)") }
        if overlap < 0 || overlap >= (tile ?? 1024) / 2 { throw ValidationError("--overlap must be within 0 and half the tile, found \(overlap)") }
    }

    func run() throws {
        runtime.apply()
        let run = try PictureRun(inputs, json: json, outDir: outDir, outputSuffixes: [tile == nil ? ".mask.png" : ".mask.tif"], ownSuffixes: ownOutputSuffixes, takesVideos: true,
                                 reads: segmenter.reads,
                                 outputs: [(output, "the -o output"), (overlay, "the --overlay output")])
        if output != nil && run.pictures.count > 1 { throw ValidationError("-o takes one picture, found \(run.pictures.count); use --out-dir") }
        if overlay != nil && run.pictures.count > 1 { throw ValidationError("--overlay takes one picture, found \(run.pictures.count)") }
        let segmenter = try self.segmenter.load()
        let text = overlay == nil ? nil : try TextRenderer()
        let explicitOutput = self.output, overlay = self.overlay
        // Tiles are segmented at their own size (--size resizes whole pictures only).
        var tileSegmenter = segmenter
        tileSegmenter.longerSide = nil
        var tiled = TiledSegmenter(segmenter: tileSegmenter, tile: tile ?? 1024, overlap: overlap,
                                   concurrentTiles: inputs.batchSize ?? min(Threading.threadCount, 4))
        tiled.context = context
        let forceTiles = tile != nil, orientation = !inputs.ignoreOrientation
        // The model's files as they are now: a resumed tiled run continues only with the same ones.
        let modelIdentity = self.segmenter.reads.compactMap(\.path).map { path -> String in
            let attributes = try? FileManager.default.attributesOfItem(atPath: path)
            let modified = (attributes?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            return "\(InputCollector.canonical(path)) \((attributes?[.size] as? Int) ?? -1) \(modified)"
        }.joined(separator: ", ") + " | \(self.segmenter.identityFlags)"
        // A picture too large to decode whole is segmented in tiles into IMG.mask.tif.
        let maskSuffix = { (picture: InputPicture, isVideo: Bool) in
            [isVideo ? ".mask.mkv" : forceTiles || LargePicture.isLarge(picture.path) ? ".mask.tif" : ".mask.png"]
        }
        let stride = videos.vidStride
        let segmentVideo = { (video: InputPicture) throws -> PictureRecord in
            // Each frame's mask (class indices, lossless) and, on request, its overlay.
            var outputs: [(path: String, kind: VideoWriter.Kind)] = [(try run.outputPath(video, suffix: ".mask.mkv", explicit: explicitOutput), .losslessGray)]
            if let overlay { outputs.append((try run.outputPath(video, suffix: ".overlay.mp4", explicit: overlay), .colour)) }
            // With --tile, each frame is cut in tiles that run at once, one frame at a time.
            return try run.runVideo(video, stride: stride, atOnce: forceTiles ? 1 : nil, outputs: outputs) { frame in
                let mask = forceTiles ? try Self.segmentInTiles(frame.image, tiled: tiled) : try segmenter.segment(frame.image)
                let present = mask.histogram
                var pictures: [FrameResult.Picture] = [.gray(mask.classes)]
                if let text {
                    pictures.append(.colour(Self.overlay(frame.image, mask: mask, present: present, segmenter: segmenter, text: text, legendInside: true)))
                }
                return FrameResult(json: ["width": frame.image.width, "height": frame.image.height,
                                          "classes": Self.json(present, of: mask.classes.count, labelledBy: segmenter)], pictures: pictures)
            }
        }
        try run.runEach(atOnce: forceTiles ? 1 : nil, suffixes: maskSuffix, video: segmentVideo) { picture in
            if forceTiles || LargePicture.isLarge(picture.path) {
                return try Self.segmentTiled(picture, tiled: tiled, run: run, output: explicitOutput, overlay: overlay, text: text, model: modelIdentity)
            }
            let image = try ImageCodec.decode(contentsOf: picture.path, applyingOrientation: orientation)
            let mask: SegmentationMask
            do {
                mask = try segmenter.segment(image)
            } catch let shortage as MemoryShortage {
                // Refused before any work: say what would fit.
                throw ImageError(.tooLarge, picture.path, "\(shortage)"
                    + (shortage.fittingLongerSide.map { "; pass --tile 1024 to segment it in tiles, or --size \($0) (or less) to run the network on a smaller copy, the mask keeping the picture's size" } ?? "; pass --tile 1024 to segment it in tiles"))
            }
            let target = try run.outputPath(picture, suffix: ".mask.png", explicit: explicitOutput)
            let total = Double(mask.classes.count)
            let present = mask.histogram
            // The mask and its overlay land together or not at all.
            var files = [(try ImageCodec.encodePNG(pixels: mask.classes, width: mask.width, height: mask.height, format: .palette(Segmenter.vocPalette)), target)]
            if let overlay, let text {
                let blended = Self.overlay(image, mask: mask, present: present, segmenter: segmenter, text: text)
                files.append((try ImageCodec.encodePNG(pixels: blended.pixels, width: blended.width, height: blended.height, format: .rgb),
                              try run.outputPath(picture, suffix: ".overlay.png", explicit: overlay)))
            }
            try ImageCodec.writeFiles(files)
            let summary = present.prefix(5).map { "\(segmenter.label($0.classIndex)) \(String(format: "%.1f", Double($0.pixels) / total * 100))%" }
            return PictureRecord(json: [
                "image": picture.path, "width": image.width, "height": image.height, "mask": target,
                "classes": Self.json(present, of: mask.classes.count, labelledBy: segmenter),
            ], message: "\(picture.path): \(summary.joined(separator: ", ")) → \(target)")
        }
    }

    /// The classes present in a mask of `total` pixels as JSON: index, label, pixels, fraction.
    static func json(_ present: [(classIndex: Int, pixels: Int)], of total: Int, labelledBy segmenter: Segmenter) -> [[String: Any]] {
        present.map {
            ["class_index": $0.classIndex, "label": segmenter.label($0.classIndex), "pixels": $0.pixels,
             "fraction": Double($0.pixels) / Double(total)] as [String: Any]
        }
    }

    /// The mask of a picture in memory segmented tile by tile (as `--tile` segments a large one).
    static func segmentInTiles(_ image: RGBImage, tiled: TiledSegmenter) throws -> SegmentationMask {
        var classes = [UInt8](repeating: 0, count: image.width * image.height)
        _ = try tiled.segment(PictureSource(image), deliver: { band in
            classes.replaceSubrange(band.rows.lowerBound * image.width..<band.rows.upperBound * image.width, with: band.mask)
        })
        return SegmentationMask(width: image.width, height: image.height, classes: classes)
    }

    /// The picture blended half-and-half with the class colours (background untouched) and a
    /// legend of the classes present, largest first: inside the picture's top-left when it fits
    /// there (always, with `legendInside`: a video's frames keep their size), else on a band
    /// beside or below the picture, so the output may be larger than the picture.
    static func overlay(_ image: RGBImage, mask: SegmentationMask, present: [(classIndex: Int, pixels: Int)],
                        segmenter: Segmenter, text: TextRenderer, legendInside: Bool = false) -> RGBImage {
        var out = image
        for (i, c) in mask.classes.enumerated() where c != 0 {
            let colour = Segmenter.vocPalette[Int(c)]
            out.pixels[3 * i] = UInt8((Int(out.pixels[3 * i]) + Int(colour.0)) / 2)
            out.pixels[3 * i + 1] = UInt8((Int(out.pixels[3 * i + 1]) + Int(colour.1)) / 2)
            out.pixels[3 * i + 2] = UInt8((Int(out.pixels[3 * i + 2]) + Int(colour.2)) / 2)
        }
        // The legend: every class present to one decimal (rows that round to 0.0% left out),
        // inside the picture's top-left when it fits in a third of its width and half its height,
        // else on a band beside (portrait) or below (landscape) the picture.
        let fontSize = max(12, Int((Double(image.width + image.height) / 2 * 0.02).rounded()))
        let rowHeight = fontSize + fontSize / 2, swatch = fontSize, padding = fontSize / 2
        let entries = present.compactMap { entry -> (Int, String)? in
            let percent = Double(entry.pixels) / Double(mask.classes.count) * 100
            guard (percent * 10).rounded() > 0 else { return nil }
            return (entry.classIndex, "\(segmenter.label(entry.classIndex)) \(String(format: "%.1f", percent))%")
        }
        let textWidth = entries.map { text.measure($0.1, pixelSize: fontSize).width }.max() ?? 0
        let legendWidth = padding * 3 + swatch + textWidth, legendHeight = padding * 2 + rowHeight * entries.count
        let inside = legendInside || legendWidth <= image.width / 3 && legendHeight <= image.height / 2
        var origin = (x: 0, y: 0)
        if inside {
            out.fill(x: 0, y: 0, width: legendWidth, height: legendHeight, colour: RGB(0, 0, 0), opacity: 0.6)
        } else {
            let below = image.width >= image.height
            var canvas = RGBImage(width: below ? max(image.width, legendWidth) : image.width + legendWidth,
                                  height: below ? image.height + legendHeight : max(image.height, legendHeight), fill: (32, 32, 32))
            for row in 0..<image.height {
                let source = row * image.width * 3, target = row * canvas.width * 3
                canvas.pixels.replaceSubrange(target..<(target + image.width * 3), with: out.pixels[source..<(source + image.width * 3)])
            }
            out = canvas
            origin = below ? (0, image.height) : (image.width, 0)
        }
        for (row, (classIndex, label)) in entries.enumerated() {
            let y = origin.y + padding + row * rowHeight, x = origin.x + padding
            let colour = Segmenter.vocPalette[classIndex]
            let top = y + (rowHeight - swatch) / 2
            out.fill(x: x - 1, y: top - 1, width: swatch + 2, height: swatch + 2, colour: RGB(220, 220, 220))
            out.fill(x: x, y: top, width: swatch, height: swatch, colour: RGB(colour.0, colour.1, colour.2))
            let metrics = text.measure(label, pixelSize: fontSize)
            text.draw(label, into: &out, x: x + padding + swatch, baselineY: y + (rowHeight + metrics.ascent - metrics.descent) / 2,
                      pixelSize: fontSize, colour: RGB(255, 255, 255))
        }
        return out
    }
}

/// Which segmenter to run, its files and working size: shared by `segment` and `eval segment`.
struct SegmenterOptions: ParsableArguments {
    @Option(help: "Model (only deeplabv3plus; its defaults are configs/deeplabv3plus.yaml).")
    var model = "deeplabv3plus"

    @Option(help: "A segmentation config YAML instead of configs/deeplabv3plus.yaml.")
    var config: String?

    @Option(help: "smp encoder name: efficientnet-b0…b7 or timm-efficientnet-b0…b7 (default: the one the checkpoint holds).")
    var encoder: String?

    @Option(help: "Number of classes (default: read from the checkpoint's head).")
    var numClasses: Int?

    @Option(help: "DeepLabV3Plus checkpoint saved by segmentation_models_pytorch (.pth/.pt/.bin/.safetensors).")
    var weights: String?

    @Option(help: "Class names, one per line (default: the config's when its count matches).")
    var labels: String?

    @Option(help: "Encoder output stride: 16 or 8 (default: the config's).")
    var outputStride: Int?

    @Option(help: "ASPP atrous rates, three comma-separated (default: the config's).")
    var atrousRates: String?

    @Option(help: "Resize the longer side to this before the network (the mask keeps the input's size).")
    var size: Int?

    func validate() throws {
        if model != "deeplabv3plus" { throw ValidationError("--model: only deeplabv3plus is available, found '\(model)'") }
        if let outputStride, ![8, 16].contains(outputStride) { throw ValidationError("--output-stride must be 16 or 8, found \(outputStride)") }
        // 10000 x 10000 is the 100-megapixel picture limit.
        if let size, !(16...10000).contains(size) { throw ValidationError("--size must be within 16...10000, found \(size)") }
        if let numClasses, !(1...256).contains(numClasses) { throw ValidationError("--num-classes must be within 1...256") }
        _ = try rates()
    }

    /// The flags that change the network's output besides its files (a resumed run must match).
    var identityFlags: String {
        "encoder \(encoder ?? "-") classes \(numClasses.map(String.init) ?? "-") stride \(outputStride.map(String.init) ?? "-") rates \(atrousRates ?? "-")"
    }

    /// The files these options read, for the run's output check.
    var reads: [(path: String?, role: String)] {
        [(weights, "the --weights checkpoint"), (config, "the --config file"), (labels, "the --labels file")]
    }

    private func rates() throws -> [Int]? {
        guard let atrousRates else { return nil }
        let values = atrousRates.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard values.count == 3, values.allSatisfy({ $0 > 0 }) else {
            throw ValidationError("--atrous-rates needs three positive integers, found '\(atrousRates)'")
        }
        return values
    }

    /// Loads the segmenter: the checkpoint decides the encoder and class count unless flags say them.
    func load() throws -> Segmenter {
        guard let weights else {
            throw ValidationError("pass --weights FILE: a DeepLabV3Plus checkpoint saved by segmentation_models_pytorch (smp publishes encoder weights only)")
        }
        let configFile = try config ?? ProjectFiles.locate("configs/deeplabv3plus.yaml")?.path
            ?? { throw ConfigError("configs/deeplabv3plus.yaml", "not found; pass --config FILE or set EFFDENSE_HOME to the effdense folder") }()
        let settings = try SegmentationConfig.load(contentsOf: configFile)
        // The checkpoint decides the encoder unless --encoder says it.
        let store = try WeightStore(contentsOf: weights)
        let encoderName = try ModelChoice.resolve(
            flagged: encoder, flag: "--encoder", store: store, what: "a DeepLabV3Plus",
            recognisedName: { if case .segmenter(let encoder, _) = $0 { return encoder }; return nil },
            sameStructure: { $0 == $1 }) ?? settings.encoder
        let classes = try numClasses ?? Self.headClasses(store)
        let configLabels = try settings.labels.map {
            try ProjectFiles.labels(URL(fileURLWithPath: configFile).deletingLastPathComponent().appendingPathComponent($0).path)
        }
        let names = try labels.map(ProjectFiles.labels) ?? (configLabels?.count == classes ? configLabels : nil) ?? []
        var segmenter = try Segmenter(encoder: SegmentationEncoder.named(encoderName), weights: store, numClasses: classes,
                                      outputStride: outputStride ?? settings.outputStride, atrousRates: try rates() ?? settings.atrousRates,
                                      decoderChannels: settings.decoderChannels, upsampling: settings.upsampling, labels: names)
        segmenter.mean = settings.mean
        segmenter.std = settings.std
        segmenter.longerSide = size
        return segmenter
    }

    /// The class count of a checkpoint's segmentation head.
    static func headClasses(_ store: WeightStore) throws -> Int {
        guard let head = store.info("segmentation_head.0.weight"), head.shape.count == 4 else {
            throw WeightsError(.missingKey, store.file, "missing key 'segmentation_head.0.weight': not a segmentation_models_pytorch DeepLabV3Plus checkpoint (key layout: \(store.layout.rawValue))")
        }
        return head.shape[0]
    }
}
