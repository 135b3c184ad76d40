import Testing
@testable import Installer

/// File names are bytes, as the runtime (Go's filepath.Ext, a '.' prefix) reads them.
struct FileNameBytesTests {
    @Test func aNameStartingWithADotByteIsHiddenWhateverFollows() {
        // ".\u{301}" is one Character, which is not "."; the first byte is still '.'.
        #expect(!ChainPlan.isLoadable(".\u{301}x.conf"))
        #expect(ChainPlan.isLoadable("10-bridge.conflist"))
        #expect(!ChainPlan.isLoadable("10-bridge.conflist.bak"))
    }
}
