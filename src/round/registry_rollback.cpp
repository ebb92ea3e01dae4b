// `retain registry rollback` (see rollback_production in registry.h): the registry and the replay
// buffer go back together, in one transaction, so that the next round replays what the restored
// production version's rounds saw.
#include "retain/log.h"
#include "retain/registry.h"
#include "retain/replay.h"
#include "retain/workspace.h"

namespace retain {

RollbackResult rollback_production(Workspace& workspace, const std::string& note) {
  Registry registry(workspace.db());
  ReplayBuffer buffer(workspace.db());
  RollbackResult result;
  Transaction txn(workspace.db());
  const auto current = registry.production();
  result.model_id = registry.rollback(note);  // throws when there is nothing to roll back
  result.retired = current->model_id;
  const UndoResult undo = buffer.undo_commit(current->run_id, current->model_id);
  txn.commit();
  result.replay_removed = undo.removed;
  result.replay_restored = undo.restored;
  log()->info("replay buffer: removed the {} example(s) {} added, put back {} it evicted", undo.removed,
              result.retired, undo.restored);
  return result;
}

}  // namespace retain
