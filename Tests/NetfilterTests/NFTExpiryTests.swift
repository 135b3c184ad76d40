import CNetfilterUAPI
import Testing
@testable import Netfilter
@testable import Netlink

/// What the nftables DEL does after giving a pod's element its timeout, for each answer the kernel
/// can give when asked for the element (see `NFTExpiry`).
struct NFTExpiryTests {
    typealias Probe = NFTExpiry.Probe

    @Test(arguments: [
        // (what the kernel says, microseconds since the update, what DEL does)
        (Probe.absent, 0, NFTExpiry.Step.done),                                      // expired already, or never there
        (Probe.absent, 60_000, .done),
        (Probe.present(expiresIn: 4), 0, .waitForTick),   // one jiffy at HZ=250
        (Probe.present(expiresIn: 0), 3_000, .waitForTick), // the jiffy has not ticked yet
        (Probe.present(expiresIn: 10), 0, .waitForTick),  // one jiffy at HZ=100
        (Probe.present(expiresIn: 11), 0, .delete),                                  // not our 1 ms: the update did not take
        (Probe.present(expiresIn: 86_400_000), 0, .delete),                          // an element with a timeout of its own
        (Probe.present(expiresIn: nil), 0, .delete),                                 // no expiration: a kernel before 6.10 ignored the update
        (Probe.present(expiresIn: 4), NFTExpiry.patienceMicroseconds - 1, .waitForTick),
        (Probe.present(expiresIn: 4), NFTExpiry.patienceMicroseconds, .delete),      // waited long enough: delete it
    ])
    func stepAfterEachAnswer(probe: Probe, waited: Int, step: NFTExpiry.Step) {
        #expect(NFTExpiry.next(after: probe, waited: waited) == step)
    }

    /// The loop DEL runs, against a kernel that expires the element after `ticks` ticks: it asks
    /// once per tick and never deletes; against one that ignores the update it deletes at once.
    @Test func theLoopEndsWhenTheKernelExpiresTheElementOrDeletesAtOnce() {
        let tick = 4_000  // microseconds, HZ=250
        func run(_ answers: [Probe]) -> (asked: Int, step: NFTExpiry.Step) {
            var waited = 0
            for (index, answer) in answers.enumerated() {
                let step = NFTExpiry.next(after: answer, waited: waited)
                guard step == .waitForTick else { return (index + 1, step) }
                waited += tick
            }
            return (answers.count, .waitForTick)
        }
        let ticking = Array(repeating: Probe.present(expiresIn: 4), count: 2) + [.absent]
        #expect(run(ticking).asked == 3)
        #expect(run(ticking).step == .done)
        #expect(run([.present(expiresIn: nil), .absent]).step == .delete)
        // A kernel that never expires it: deleted once the patience is spent, not asked forever.
        let stuck = Array(repeating: Probe.present(expiresIn: 4), count: 1000)
        #expect(run(stuck).asked == (NFTExpiry.patienceMicroseconds + tick - 1) / tick + 1)  // every tick until the patience is spent, then once more
        #expect(run(stuck).step == .delete)
    }

    @Test(arguments: [
        // (last tick, now, tick: nanoseconds; microseconds to sleep)
        (0, 0, 4_000_000, 4_000 + NFTExpiry.afterTickMicroseconds),              // right at a tick: a whole one
        (0, 3_000_000, 4_000_000, 1_000 + NFTExpiry.afterTickMicroseconds),      // a quarter left
        (0, 3_999_999, 4_000_000, 0 + NFTExpiry.afterTickMicroseconds),
        (0, 4_000_000, 4_000_000, NFTExpiry.lateTickMicroseconds),               // due, not shown yet
        (0, 9_000_000, 4_000_000, NFTExpiry.lateTickMicroseconds),               // a tickless CPU: look again soon
        (1_000_000_000, 1_000_500_000, 1_000_000, 500 + NFTExpiry.afterTickMicroseconds),  // HZ=1000
        (7_000_000, 7_000_000, 10_000_000, 10_000 + NFTExpiry.afterTickMicroseconds),      // HZ=100
    ])
    func sleepsUntilJustAfterTheNextTick(lastTick: Int, now: Int, tick: Int, microseconds: Int) {
        #expect(NFTExpiry.sleepMicroseconds(lastTick: lastTick, now: now, tick: tick) == microseconds)
    }

    /// The element's attributes as the kernel sends them: the expiration is a big-endian u64 of
    /// milliseconds; an element without one (it never expires) gives no figure.
    @Test func theProbeReadsTheExpirationTheKernelSends() {
        let key = NetlinkAttribute(type: UInt16(NFTA_SET_ELEM_KEY.rawValue), payload: [8, 0, 1, 0, 198, 18, 0, 3])
        let expiration = NetlinkAttribute(type: UInt16(NFTA_SET_ELEM_EXPIRATION.rawValue), payload: [0, 0, 0, 0, 0, 0, 0x01, 0x04])
        #expect(NFTablesBackend.probe(element: [key, expiration]) == .present(expiresIn: 260))
        #expect(NFTablesBackend.probe(element: [key]) == .present(expiresIn: nil))
        #expect(NFTablesBackend.probe(element: nil) == .present(expiresIn: nil), "an answer without the element: deleted, to be sure")
        let short = NetlinkAttribute(type: UInt16(NFTA_SET_ELEM_EXPIRATION.rawValue), payload: [0, 4])
        #expect(NFTablesBackend.probe(element: [key, short]) == .present(expiresIn: nil))
    }
}
