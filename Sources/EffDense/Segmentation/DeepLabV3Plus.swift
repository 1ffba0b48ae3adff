import EffCore
import EffWeights
import Foundation

/// segmentation_models_pytorch's EfficientNet encoders: which blocks give the features and
/// which get dilated, as smp's own encoder tables define them.
public struct SegmentationEncoder: Sendable {
    public let name: String
    /// The encoder's EfficientNet (adjustable, e.g. a narrower width for tests).
    public var architecture: EfficientNetArchitecture
    public let keys: EfficientNetKeys
    /// Flat block indices whose outputs are the stride 4, 8, 16, 32 features (the stem gives stride 2).
    public let featureBlocks: [Int]
    /// First block of smp's "stride 16" and "stride 32" stages (dilated past the output stride).
    public let stage16Start: Int, stage32Start: Int

    /// `efficientnet-b0…b7` (lukemelas layout, TF padding static for the nominal size) or `timm-efficientnet-b0…b7` (timm layout,
    /// built by smp with timm's PyTorch-native padding and eps).
    public static func named(_ name: String) throws -> SegmentationEncoder {
        // smp's out_indexes for efficientnet-bN (note b0 takes its stride-16 feature at block 8).
        let lukemelasIndexes = [[2, 4, 8, 15], [4, 7, 15, 22], [4, 7, 15, 22], [4, 7, 17, 25],
                                [5, 9, 21, 31], [7, 12, 26, 38], [8, 14, 30, 44], [10, 17, 37, 54]]
        let scaling: [(Double, Double)] = [(1.0, 1.0), (1.0, 1.1), (1.1, 1.2), (1.2, 1.4), (1.4, 1.8), (1.6, 2.2), (1.8, 2.6), (2.0, 3.1)]
        if name.hasPrefix("efficientnet-b"), let i = Int(name.dropFirst(14)), (0..<8).contains(i) {
            var architecture = EfficientNetArchitecture(width: scaling[i].0, depth: scaling[i].1, flavour: .tensorflow)
            architecture.staticPaddingImageSize = [224, 240, 260, 300, 380, 456, 528, 600][i]
            architecture.firstBlockOfStageHasSkip = false
            let indexes = lukemelasIndexes[i]
            return SegmentationEncoder(name: name, architecture: architecture, keys: EfficientNetKeys(layout: .lukemelas, prefix: "encoder."),
                                       featureBlocks: indexes, stage16Start: indexes[1] + 1, stage32Start: indexes[2] + 1)
        }
        if name.hasPrefix("timm-efficientnet-b"), let i = Int(name.dropFirst(19)), (0..<8).contains(i) {
            let architecture = EfficientNetArchitecture(width: scaling[i].0, depth: scaling[i].1, flavour: .pytorch)
            let starts = architecture.stageStarts
            let stageEnd = { (stage: Int) in stage + 1 < starts.count ? starts[stage + 1] - 1 : (try? architecture.blocks().count - 1) ?? 0 }
            return SegmentationEncoder(name: name, architecture: architecture, keys: EfficientNetKeys(layout: .timm, prefix: "encoder."),
                                       featureBlocks: [stageEnd(1), stageEnd(2), stageEnd(4), stageEnd(6)],
                                       stage16Start: starts[3], stage32Start: starts[5])
        }
        throw ConfigError(name, "unknown encoder (known: efficientnet-b0…b7, timm-efficientnet-b0…b7)")
    }

    /// The encoder network at output stride 16 or 8, its weights bound (the unused head skipped).
    func build(outputStride: Int, binder: WeightBinder) throws -> EfficientNet {
        guard outputStride == 16 || outputStride == 8 else {
            throw ConfigError(name, "output stride must be 16 or 8, found \(outputStride)")
        }
        let dilation = outputStride == 16 ? [(from: stage32Start, dilation: 2)] : [(from: stage16Start, dilation: 2), (from: stage32Start, dilation: 4)]
        let blocks = try architecture.blocks(dilating: dilation, features: Set(featureBlocks))
        let network = try EfficientNet(architecture: architecture, outputStride: outputStride, blocks: blocks, stemIsFeature: true,
                                       weights: binder, keys: keys, includeClassifier: false)
        binder.skip(prefix: keys.head.conv + ".")
        binder.skip(prefix: keys.head.bn + ".")
        return network
    }
}

/// A depthwise 3x3 (dilated, symmetric padding) then a 1x1 convolution with BatchNorm (folded) and ReLU.
struct SeparableConvBNReLU: Sendable {
    let depthwise: DepthwiseConv2D
    let pointwise: Conv2D

    init(depthwise dw: String, pointwise pw: String, bn: String, in inChannels: Int, out: Int, dilation: Int, layer: LayerBinder) throws {
        depthwise = try DepthwiseConv2D(weight: layer.binder.tensor(dw + ".weight", shape: [inChannels, 1, 3, 3]),
                                        dilation: dilation, padding: .explicit(dilation))
        pointwise = try layer.conv(pw, bn: bn, in: inChannels, out: out, kernel: 1, activation: .relu, bias: false)
    }

    func callAsFunction(_ x: Tensor) throws -> Tensor { try pointwise(depthwise: depthwise, of: x) }

    /// The output written into channels `channelOffset...` of `joined`.
    func callAsFunction(_ x: Tensor, into joined: inout Tensor, channelOffset: Int) throws {
        try pointwise(depthwise: depthwise, of: x, into: &joined, channelOffset: channelOffset)
    }

    /// `next` applied to the output, band by band with it.
    func callAsFunction(_ x: Tensor, followedBy next: Conv2D) throws -> Tensor {
        try pointwise(depthwise: depthwise, of: x, followedBy: next)
    }
}

/// DeepLabV3+ as segmentation_models_pytorch builds it, on an smp EfficientNet encoder.
public struct DeepLabV3Plus: Sendable {
    public let encoder: EfficientNet
    /// smp's name of the encoder (`efficientnet-b4`, `timm-efficientnet-b4`).
    public let encoderName: String
    public let outputStride: Int
    public let numClasses: Int
    let asppBranch0: Conv2D
    let asppAtrous: [SeparableConvBNReLU]
    let asppPooling: Conv2D
    let asppProject: Conv2D
    let asppSeparable: SeparableConvBNReLU
    let block1: Conv2D
    let block2: SeparableConvBNReLU
    let head: Conv2D
    let upsampling: Int

    /// Binds smp's `DeepLabV3Plus(encoder_name, encoder_output_stride, decoder_atrous_rates,
    /// decoder_channels, classes)` weights (aspp separable, dropout off at inference).
    public init(encoder spec: SegmentationEncoder, outputStride: Int = 16, numClasses: Int, atrousRates: [Int] = [12, 24, 36],
                decoderChannels: Int = 256, upsampling: Int = 4, weights binder: WeightBinder) throws {
        guard atrousRates.count == 3, atrousRates.allSatisfy({ $0 > 0 }) else {
            throw ConfigError(spec.name, "ASPP needs three positive atrous rates, found \(atrousRates)")
        }
        encoder = try spec.build(outputStride: outputStride, binder: binder)
        encoderName = spec.name
        self.outputStride = outputStride
        self.numClasses = numClasses
        self.upsampling = upsampling
        let layer = LayerBinder(binder: binder, padding: .valid, eps: 1e-5)
        let channels = encoder.featureChannels
        let deep = channels[channels.count - 1], low = channels[1]
        let c = decoderChannels, aspp = "decoder.aspp.0."
        asppBranch0 = try layer.conv(aspp + "convs.0.0", bn: aspp + "convs.0.1", in: deep, out: c, kernel: 1, activation: .relu, bias: false)
        asppAtrous = try atrousRates.enumerated().map { i, rate in
            let b = aspp + "convs.\(i + 1)."
            return try SeparableConvBNReLU(depthwise: b + "0.0", pointwise: b + "0.1", bn: b + "1", in: deep, out: c, dilation: rate, layer: layer)
        }
        asppPooling = try layer.conv(aspp + "convs.4.1", bn: aspp + "convs.4.2", in: deep, out: c, kernel: 1, activation: .relu, bias: false)
        asppProject = try layer.conv(aspp + "project.0", bn: aspp + "project.1", in: 5 * c, out: c, kernel: 1, activation: .relu, bias: false)
        asppSeparable = try SeparableConvBNReLU(depthwise: "decoder.aspp.1.0", pointwise: "decoder.aspp.1.1", bn: "decoder.aspp.2",
                                                in: c, out: c, dilation: 1, layer: layer)
        block1 = try layer.conv("decoder.block1.0", bn: "decoder.block1.1", in: low, out: 48, kernel: 1, activation: .relu, bias: false)
        block2 = try SeparableConvBNReLU(depthwise: "decoder.block2.0.0", pointwise: "decoder.block2.0.1", bn: "decoder.block2.1",
                                         in: c + 48, out: c, dilation: 1, layer: layer)
        head = try layer.conv("segmentation_head.0", bn: nil, in: c, out: numClasses, kernel: 1, activation: .identity)
    }

    /// Input sides must be multiples of this (smp's own requirement); `Segmenter` pads to it.
    public var sizeMultiple: Int { outputStride }

    /// Class logits [1, H, W, classes] for an input [1, H, W, 3] whose sides are multiples of
    /// `sizeMultiple`. `pools`: the channel means its global pools take (the encoder's
    /// squeeze-and-excitation, then the ASPP image pooling; nil: each its own input's).
    public func callAsFunction(_ input: Tensor, pools: GlobalPooling? = nil) throws -> Tensor {
        let features = try encoderFeatures(input, pools: pools)
        let deep = features[features.count - 1]
        // ASPP: 1x1, three separable atrous branches, image pooling (broadcast back), each written
        // into its channels of the joined tensor; then project.
        let c = asppBranch0.outChannels
        var branches = Tensor(uninitialized: [deep.shape[0], deep.shape[1], deep.shape[2], c * (asppAtrous.count + 2)])
        try asppBranch0(deep, into: &branches, channelOffset: 0)
        for (i, branch) in asppAtrous.enumerated() { try branch(deep, into: &branches, channelOffset: c * (i + 1)) }
        let pooled = try asppPooling(pools?.mean(of: deep) ?? globalAveragePool(deep))
        try resizeBilinear(pooled, alignCorners: false, into: &branches, channelOffset: c * (asppAtrous.count + 1))
        let x = try asppSeparable(asppProject(branches))
        // The upsampled ASPP output and block1 of the stride-4 feature (smp's features[2]: its list
        // starts with the input), each written into its channels of the joined tensor.
        let low = features[1]
        var joined = Tensor(uninitialized: [low.shape[0], low.shape[1], low.shape[2], x.shape[3] + block1.outChannels])
        try resizeBilinear(x, alignCorners: true, into: &joined, channelOffset: 0)
        try block1(low, into: &joined, channelOffset: x.shape[3])
        let logits = try block2(joined, followedBy: head)
        return try resizeBilinear(logits, height: logits.shape[1] * upsampling, width: logits.shape[2] * upsampling, alignCorners: true)
    }

    /// Only the network's global pools, through `pools` (gathering them): the encoder and the
    /// ASPP image pooling's mean; the decoder is not run.
    public func takePools(_ input: Tensor, pools: GlobalPooling) throws {
        let features = try encoderFeatures(input, pools: pools)
        _ = try pools.mean(of: features[features.count - 1])
    }

    private func encoderFeatures(_ input: Tensor, pools: GlobalPooling?) throws -> [Tensor] {
        let (_, h, w, _) = try input.requireNHWC("DeepLabV3Plus")
        guard h % sizeMultiple == 0, w % sizeMultiple == 0 else {
            throw TensorError("DeepLabV3Plus", "input \(h)x\(w) must have sides divisible by \(sizeMultiple) (pad it first)")
        }
        return try encoder.features(input, pools: pools)
    }
}
