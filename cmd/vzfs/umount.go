package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/vzfs/vzfs/fs"
)

func init() { register(newUmountCmd) }

func newUmountCmd(g *globalOpts) *cobra.Command {
	var lazy bool
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "umount [--lazy] MOUNTPOINT",
		Short: "Unmount a vzfs view and wait for its daemon to exit",
		Long: `Umount unmounts a view made by 'vzfs mount' and waits for the daemon that
served it to exit, so that when it returns nothing of the mount is left.

A mount still in use (a shell's working directory, an open file) is busy:
umount says so and leaves it. --lazy detaches it at once instead; the
kernel frees it when its last user leaves.

It also clears a dead mount whose daemon was killed ("transport endpoint is
not connected").

A learning mount (vzfs mount --learn) rewrites its spec, sorted, before
its daemon exits, so once umount returns the spec is final. After a killed
daemon the spec holds every learned line, unsorted; the next learning
mount's clean unmount sorts it.

The daemon is found through the pid file 'vzfs mount' writes under
/run/vzfs/mounts (for root) or $XDG_RUNTIME_DIR/vzfs/mounts.`,
		Example: `  vzfs umount /tmp/view
  vzfs umount --lazy /tmp/view   # even while a shell sits in it`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			mnt, err := filepath.Abs(args[0])
			if err != nil {
				return usageErr(err)
			}
			mi, ok := fs.FindMount(mnt)
			if !ok {
				return usageErr(fmt.Errorf("%s: not mounted", mnt))
			}
			if mi.FSType != "fuse."+fs.FSType {
				return usageErr(fmt.Errorf("%s: not a vzfs mount (type %s)", mnt, mi.FSType), "use umount(8) for other filesystems")
			}
			pid, detached, err := fs.StopDaemon(mnt, lazy, wait)
			if errors.Is(err, unix.EBUSY) {
				return failErr(fmt.Errorf("%s: mount is busy: a process uses a file or directory in it", mnt),
					"find them with: fuser -vm "+mnt,
					"or detach it now with: vzfs umount --lazy "+mnt)
			}
			if err != nil {
				return failErr(err)
			}
			if detached {
				fmt.Fprintf(cmd.OutOrStdout(), "detached %s; daemon pid %d exits when its last user leaves\n", mnt, pid)
				return nil
			}
			g.log.Debug("unmounted", zap.String("mountpoint", mnt), zap.Int("daemon_pid", pid))
			fmt.Fprintf(cmd.OutOrStdout(), "unmounted %s\n", mnt)
			return nil
		},
	}
	cmd.Flags().BoolVar(&lazy, "lazy", false, "detach the mount even if it is busy")
	cmd.Flags().DurationVar(&wait, "wait", 10*time.Second, "how long to wait for the daemon to exit")
	return cmd
}
