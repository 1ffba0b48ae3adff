import EffImage
import EffVideo
import Foundation
import Testing

@Suite struct VideoTests {
    @Test func placeholder() {}
}
