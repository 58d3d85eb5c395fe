package apps

import (
	"context"
	"time"

	"github.com/hypha-go/hypha/worker"
)

// followPoll is how often readWorkerLogs asks again while it waits.
const followPoll = 250 * time.Millisecond

// readWorkerLogs reads a page of s's logs from a worker that may not take
// the wait/follower arguments (one that never answered with next_offset:
// upstream's and third-party workers; see LogPage.Follows). It sends plain
// reads and, for a wait of q.Wait, asks again until entries come or the
// wait ends, so that a follower (hypha run, apps logs -f) does not spin.
// There is no back-pressure on such a worker. How arguments reach workers
// is hyphaworker.RemoteWorker's (docs/compatibility.md, "Worker calls on
// the wire").
func (c *Controller) readWorkerLogs(ctx context.Context, s *session, q worker.LogQuery) (worker.LogPage, error) {
	deadline := time.Now().Add(min(q.Wait, worker.MaxLogWait))
	q.Wait, q.Follower = 0, ""
	for {
		page, err := s.worker.GetLogs(ctx, s.id, q)
		if err != nil || len(page.Items) > 0 || page.Wire != nil && page.Wire["items"] == nil || !time.Now().Before(deadline) {
			return page, err
		}
		t := time.NewTimer(min(followPoll, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return page, nil
		case <-t.C:
		}
	}
}
