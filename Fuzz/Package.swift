// swift-tools-version: 6.0
// Fuzz targets for effdense's parsers (libFuzzer). Built and run by scripts/fuzz.sh; not part of
// the main package's build or tests.
import PackageDescription

let package = Package(
    name: "effdense-fuzz",
    dependencies: [.package(name: "effdense", path: "..")],
    targets: [
        // PNG and JPEG decoding (ImageCodec.decode), the bytes recognised by content.
        .executableTarget(name: "FuzzImage", dependencies: [.product(name: "EffImage", package: "effdense")]),
        // Checkpoint readers (WeightStore): safetensors, torch.save zip, torch.save legacy + pickle.
        .executableTarget(name: "FuzzCheckpoint", dependencies: [.product(name: "EffWeights", package: "effdense")]),
    ]
)
