// swift-tools-version: 6.0
// Fuzz targets for effdense's parsers (libFuzzer). Built and run by scripts/fuzz.sh; not part of
// the main package's build or tests.
import PackageDescription

let package = Package(
    name: "effdense-fuzz",
    dependencies: [
        .package(name: "effdense", path: ".."),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.20"),
    ],
    targets: [
        // PNG and JPEG decoding (ImageCodec.decode), the bytes recognised by content.
        .executableTarget(name: "FuzzImage", dependencies: [.product(name: "EffImage", package: "effdense")]),
        // Large TIFF / BigTIFF region reading (TIFFRegionReader): tiled, striped, pyramids.
        .executableTarget(name: "FuzzTIFF", dependencies: [.product(name: "EffImage", package: "effdense")]),
        // Videos (VideoFile.isVideo, VideoReader): any container / codec FFmpeg reads, frames decoded.
        .executableTarget(name: "FuzzVideo", dependencies: [.product(name: "EffVideo", package: "effdense")]),
        // Checkpoint readers (WeightStore): safetensors, torch.save zip, torch.save legacy + pickle.
        .executableTarget(name: "FuzzCheckpoint", dependencies: ["FuzzSupport"]),
        // Structure-aware: pickles built from opcode sequences (shapes with zeros and huge
        // dimensions, claimed sizes, long runs of one opcode) inside torch.save zips.
        .executableTarget(name: "FuzzPickle", dependencies: ["FuzzSupport"]),
        // Structure-aware: safetensors headers (shapes, dtypes, offsets, header length claims).
        .executableTarget(name: "FuzzSafetensors", dependencies: ["FuzzSupport"]),
        // What the checkpoint targets share: choices from the fuzzer's bytes, reading a file whole.
        .target(name: "FuzzSupport", dependencies: [
            .product(name: "EffWeights", package: "effdense"),
            .product(name: "ZIPFoundation", package: "ZIPFoundation"),
        ]),
    ]
)
