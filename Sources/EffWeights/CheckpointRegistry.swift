import Foundation

/// The official checkpoints effdense knows by model name: effdet's and timm's release files.
/// The hex after the last '-' of each file name is the prefix of its SHA-256, checked after
/// download the way torch.hub does.
public enum CheckpointRegistry {
    static let effdet = "https://github.com/rwightman/efficientdet-pytorch/releases/download/v0.1/"
    static let timm = "https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"

    /// Model name → download URL.
    public static let urls: [String: String] = [
        "tf_efficientdet_d0": effdet + "tf_efficientdet_d0_34-f153e0cf.pth",
        "tf_efficientdet_d1": effdet + "tf_efficientdet_d1_40-a30f94af.pth",
        "tf_efficientdet_d2": effdet + "tf_efficientdet_d2_43-8107aa99.pth",
        "tf_efficientdet_d3": effdet + "tf_efficientdet_d3_47-0b525f35.pth",
        "tf_efficientdet_d4": effdet + "tf_efficientdet_d4_49-f56376d9.pth",
        "tf_efficientdet_d5": effdet + "tf_efficientdet_d5_51-c79f9be6.pth",
        "tf_efficientdet_d6": effdet + "tf_efficientdet_d6_52-4eda3773.pth",
        "tf_efficientdet_d7": effdet + "tf_efficientdet_d7_53-6d1d7a95.pth",
        "tf_efficientdet_d7x": effdet + "tf_efficientdet_d7x-f390b87c.pth",
        "efficientdet_d0": effdet + "efficientdet_d0-f3276ba8.pth",
        "efficientdet_d1": effdet + "efficientdet_d1-bb7e98fe.pth",
        "tf_efficientdet_lite0": effdet + "tf_efficientdet_lite0-dfacfc78.pth",
        "tf_efficientdet_lite1": effdet + "tf_efficientdet_lite1-6dc7ab30.pth",
        "tf_efficientdet_lite2": effdet + "tf_efficientdet_lite2-86c5d55b.pth",
        "tf_efficientdet_lite3": effdet + "tf_efficientdet_lite3-506852cb.pth",
        "tf_efficientdet_lite4": effdet + "tf_efficientdet_lite4-391ddabc.pth",
        "efficientnet_b0": timm + "efficientnet_b0_ra-3dd342df.pth",
        "efficientnet_b1": timm + "efficientnet_b1-533bc792.pth",
        "efficientnet_b2": timm + "efficientnet_b2_ra-bcdf34b7.pth",
        "efficientnet_b3": timm + "efficientnet_b3_ra2-cf984f9c.pth",
        "efficientnet_b4": timm + "efficientnet_b4_ra2_320-7eb33cd5.pth",
        "efficientnet_lite0": timm + "efficientnet_lite0_ra-37913777.pth",
        "tf_efficientnet_b0": timm + "tf_efficientnet_b0_ns-c0e6a31c.pth",
        "tf_efficientnet_b1": timm + "tf_efficientnet_b1_ns-99dd0c41.pth",
        "tf_efficientnet_b2": timm + "tf_efficientnet_b2_ns-00306e48.pth",
        "tf_efficientnet_b3": timm + "tf_efficientnet_b3_ns-9d44bf68.pth",
        "tf_efficientnet_b4": timm + "tf_efficientnet_b4_ns-d6313a46.pth",
        "tf_efficientnet_b5": timm + "tf_efficientnet_b5_ns-6f26d0cf.pth",
        "tf_efficientnet_b6": timm + "tf_efficientnet_b6_ns-51548356.pth",
        "tf_efficientnet_b7": timm + "tf_efficientnet_b7_ns-1dbc32de.pth",
        "tf_efficientnet_lite0": timm + "tf_efficientnet_lite0-0aa007d2.pth",
        "tf_efficientnet_lite1": timm + "tf_efficientnet_lite1-bde8b488.pth",
        "tf_efficientnet_lite2": timm + "tf_efficientnet_lite2-dcccb7df.pth",
        "tf_efficientnet_lite3": timm + "tf_efficientnet_lite3-b733e338.pth",
        "tf_efficientnet_lite4": timm + "tf_efficientnet_lite4-741542c3.pth",
    ]

    /// Short names accepted on top of the reference names.
    public static let aliases: [String: String] = [
        "d0": "tf_efficientdet_d0", "d1": "tf_efficientdet_d1", "d2": "tf_efficientdet_d2", "d3": "tf_efficientdet_d3",
        "d4": "tf_efficientdet_d4", "d5": "tf_efficientdet_d5", "d6": "tf_efficientdet_d6", "d7": "tf_efficientdet_d7",
        "d7x": "tf_efficientdet_d7x",
    ]

    /// The reference name for `name` (an alias resolved), if known.
    public static func canonicalName(_ name: String) -> String? {
        let resolved = aliases[name] ?? name
        return urls[resolved] == nil ? nil : resolved
    }

    /// The download URL for a model name, with the file fetched from `mirror` (a base URL)
    /// instead of the release page when one is given (`EFFDENSE_WEIGHTS_MIRROR`).
    public static func url(for name: String, mirror: String? = ProcessInfo.processInfo.environment["EFFDENSE_WEIGHTS_MIRROR"]) throws -> URL {
        guard let canonical = canonicalName(name), let official = urls[canonical], let url = URL(string: official) else {
            let known = urls.keys.sorted().joined(separator: ", ")
            throw WeightsError(.download, name, "no official checkpoint is known by this name (known: \(known))")
        }
        guard let mirror, !mirror.isEmpty else { return url }
        guard let base = URL(string: mirror.hasSuffix("/") ? mirror : mirror + "/") else {
            throw WeightsError(.download, mirror, "EFFDENSE_WEIGHTS_MIRROR is not a URL")
        }
        return base.appendingPathComponent(url.lastPathComponent)
    }

    /// The cache folder: `$XDG_CACHE_HOME/effdense`, else `~/.cache/effdense`.
    public static var cacheDirectory: URL {
        let environment = ProcessInfo.processInfo.environment
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty {
            return URL(fileURLWithPath: xdg).appendingPathComponent("effdense")
        }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/effdense")
    }

    /// Where the checkpoint for `name` lives once pulled.
    public static func cachedFile(for name: String) throws -> URL {
        cacheDirectory.appendingPathComponent(try url(for: name, mirror: nil).lastPathComponent)
    }

    /// The SHA-256 prefix torch.hub reads from a file name (`name-<hex>.ext`), if it has one.
    public static func hashPrefix(inFileName fileName: String) -> String? {
        let stem = fileName.split(separator: ".").first.map(String.init) ?? fileName
        guard let dash = stem.lastIndex(of: "-") else { return nil }
        let hex = stem[stem.index(after: dash)...]
        guard !hex.isEmpty, hex.allSatisfy(\.isHexDigit) else { return nil }
        return hex.lowercased()
    }
}
