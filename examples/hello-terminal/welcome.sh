# Read by bash at start (--rcfile): a greeting and a prompt.
echo "Hello from a terminal app: session $HYPHA_CLIENT_ID in workspace $HYPHA_WORKSPACE"
echo "This shell runs in $(pwd), as uid $(id -u). Type exit (or Ctrl-]) to leave."
PS1='hello-terminal$ '
