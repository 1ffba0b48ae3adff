import EffCore
import EffImage
import EffWeights
import Foundation

/// A class mask: one class index per pixel, row-major.
public struct SegmentationMask: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var classes: [UInt8]

    public init(width: Int, height: Int, classes: [UInt8]) {
        self.width = width
        self.height = height
        self.classes = classes
    }

    /// Pixel count per class index present, most frequent first.
    public var histogram: [(classIndex: Int, pixels: Int)] {
        var counts = [Int](repeating: 0, count: 256)
        for c in classes { counts[Int(c)] += 1 }
        return counts.enumerated().filter { $0.element > 0 }.map { ($0.offset, $0.element) }.sorted { $0.pixels > $1.pixels }
    }

    public static func == (a: SegmentationMask, b: SegmentationMask) -> Bool {
        a.width == b.width && a.height == b.height && a.classes == b.classes
    }
}

/// Semantic segmentation of pictures of any size: normalise, zero-pad the bottom / right to a
/// multiple of the output stride, DeepLabV3+, crop back, per-pixel argmax.
public struct Segmenter: Sendable {
    public let network: DeepLabV3Plus
    public let labels: [String]
    public var mean: [Float] = ClassifierPreprocessing.imagenetMean
    public var std: [Float] = ClassifierPreprocessing.imagenetStd
    /// Resize the longer side to this before the network (the mask keeps the input's size).
    public var longerSide: Int?

    /// Loads smp's DeepLabV3Plus weights (strictly) for the smp encoder named `encoder`.
    public init(encoder: String, weightsFile: String, numClasses: Int, outputStride: Int = 16,
                atrousRates: [Int] = [12, 24, 36], decoderChannels: Int = 256, upsampling: Int = 4, labels: [String] = []) throws {
        try self.init(encoder: SegmentationEncoder.named(encoder), weightsFile: weightsFile, numClasses: numClasses,
                      outputStride: outputStride, atrousRates: atrousRates, decoderChannels: decoderChannels,
                      upsampling: upsampling, labels: labels)
    }

    /// Loads smp's DeepLabV3Plus weights (strictly) for an encoder description.
    public init(encoder: SegmentationEncoder, weightsFile: String, numClasses: Int, outputStride: Int = 16,
                atrousRates: [Int] = [12, 24, 36], decoderChannels: Int = 256, upsampling: Int = 4, labels: [String] = []) throws {
        try self.init(encoder: encoder, weights: WeightStore(contentsOf: weightsFile), numClasses: numClasses, outputStride: outputStride,
                      atrousRates: atrousRates, decoderChannels: decoderChannels, upsampling: upsampling, labels: labels)
    }

    /// Loads smp's DeepLabV3Plus weights (strictly) from an opened checkpoint.
    public init(encoder: SegmentationEncoder, weights store: WeightStore, numClasses: Int, outputStride: Int = 16,
                atrousRates: [Int] = [12, 24, 36], decoderChannels: Int = 256, upsampling: Int = 4, labels: [String] = []) throws {
        let weightsFile = store.file
        guard (1...256).contains(numClasses) else {
            throw ConfigError(weightsFile, "a mask holds 1 to 256 classes, found \(numClasses)")
        }
        let binder = WeightBinder(store)
        network = try DeepLabV3Plus(encoder: encoder, outputStride: outputStride, numClasses: numClasses,
                                    atrousRates: atrousRates, decoderChannels: decoderChannels, upsampling: upsampling, weights: binder)
        try binder.finish()
        guard labels.isEmpty || labels.count == numClasses else {
            throw ConfigError(weightsFile, "\(labels.count) labels for \(numClasses) classes")
        }
        self.labels = labels
    }

    /// A segmenter around an already built network.
    public init(network: DeepLabV3Plus, labels: [String] = []) {
        self.network = network
        self.labels = labels
    }

    /// The label of a class index (its number when there are no labels).
    public func label(_ classIndex: Int) -> String {
        classIndex < labels.count ? labels[classIndex] : String(classIndex)
    }

    /// Logits [1, H, W, classes] for a normalised picture [1, H, W, 3] of any size. `pools`:
    /// the channel means the network's global pools take (nil: each its own input's).
    public func logits(_ input: Tensor, pools: GlobalPooling? = nil) throws -> Tensor {
        let (_, h, w, _) = try input.requireNHWC("Segmenter")
        let padded = try paddedToSizeMultiple(input)
        let full = try network(padded, pools: pools)
        let (ph, pw) = (padded.shape[1], padded.shape[2])
        guard ph != h || pw != w else { return full }
        let k = full.shape[3]
        var cropped = Tensor(uninitialized: [1, h, w, k])
        full.withUnsafeBufferPointer { src in
            cropped.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h { for x in 0..<(w * k) { dst[y * w * k + x] = src[y * pw * k + x] } }
            }
        }
        return cropped
    }

    /// Runs the picture through the network's global pools only (`DeepLabV3Plus.takePools`), as
    /// `segment` would see it, `pools` gathering their inputs.
    public func gatherPools(_ image: RGBImage, into pools: GlobalPooling) throws {
        let (width, height) = workingSize(image)
        let work = width != image.width || height != image.height ? try image.resized(width: width, height: height, filter: .bilinear) : image
        try network.takePools(paddedToSizeMultiple(work.tensor(mean: mean, std: std)), pools: pools)
    }

    /// The input zero-padded at the bottom and right to multiples of the network's size multiple.
    private func paddedToSizeMultiple(_ input: Tensor) throws -> Tensor {
        let (_, h, w, c) = try input.requireNHWC("Segmenter")
        let m = network.sizeMultiple
        let (ph, pw) = ((h + m - 1) / m * m, (w + m - 1) / m * m)
        guard ph != h || pw != w else { return input }
        var padded = Tensor(zeros: [1, ph, pw, c])
        input.withUnsafeBufferPointer { src in
            padded.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h { for x in 0..<(w * c) { dst[y * pw * c + x] = src[y * w * c + x] } }
            }
        }
        return padded
    }

    /// The size the network works at for a picture (`longerSide` applied).
    public func workingSize(_ image: RGBImage) -> (width: Int, height: Int) {
        guard let longerSide, longerSide != max(image.width, image.height) else { return (image.width, image.height) }
        let scale = Double(longerSide) / Double(max(image.width, image.height))
        return (max(1, Int((Double(image.width) * scale).rounded())), max(1, Int((Double(image.height) * scale).rounded())))
    }

    /// The class mask of a picture, at the picture's size. The memory it needs is estimated
    /// first (`NetworkMemory`) and reserved (`MemoryBudget`): a picture too large for the
    /// memory the process may have is refused with `MemoryShortage` before any work.
    /// `pools`: the channel means the network's global pools take (nil: each its own input's).
    public func segment(_ image: RGBImage, pools: GlobalPooling? = nil) throws -> SegmentationMask {
        let (width, height) = workingSize(image)
        let perMegapixel = NetworkMemory.segmentationPerMegapixelMB(encoder: network.encoderName, outputStride: network.outputStride,
                                                                   classes: network.numClasses)
        let bytes = NetworkMemory.additionalBytes(perMegapixelMB: perMegapixel, networkPixels: width * height,
                                                  picturePixels: image.width * image.height)
        let work = "segmenting \(image.width)x\(image.height) pixels" + (width != image.width ? " at \(width)x\(height)" : "")
        do {
            return try MemoryBudget.withReservation(bytes, for: work) { try segmentNow(image, width: width, height: height, pools: pools) }
        } catch var shortage as MemoryShortage {
            let aspect = Double(max(image.width, image.height)) / Double(max(1, min(image.width, image.height)))
            shortage.fittingLongerSide = NetworkMemory.fittingLongerSide(
                perMegapixelMB: perMegapixel, aspect: aspect, picturePixels: image.width * image.height, available: shortage.availableBytes)
            throw shortage
        }
    }

    private func segmentNow(_ image: RGBImage, width: Int, height: Int, pools: GlobalPooling?) throws -> SegmentationMask {
        var work = image
        if width != image.width || height != image.height {
            work = try image.resized(width: width, height: height, filter: .bilinear)
        }
        let scores = try logits(work.tensor(mean: mean, std: std), pools: pools)
        if work.width != image.width || work.height != image.height {
            // Band by band: the scores at the picture's size never exist whole.
            return SegmentationMask(width: image.width, height: image.height,
                                    classes: try argmaxOfResizedBilinear(scores, height: image.height, width: image.width, alignCorners: false))
        }
        return SegmentationMask(width: image.width, height: image.height, classes: try argmaxChannels(scores).map { UInt8($0) })
    }

    /// Pascal VOC's palette: colour i for class i.
    public static let vocPalette: [(UInt8, UInt8, UInt8)] = (0..<256).map { i in
        var (r, g, b, c) = (0, 0, 0, i)
        for j in 0..<8 {
            r |= (c & 1) << (7 - j); g |= ((c >> 1) & 1) << (7 - j); b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        }
        return (UInt8(r), UInt8(g), UInt8(b))
    }
}
