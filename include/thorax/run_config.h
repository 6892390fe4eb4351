/* run_config.h - a configuration checked against the network it describes.
 *
 * Part of train: the config module reads and validates keys without knowing
 * the network code (it depends on thorax/spec.h alone), so what only the
 * network can tell - that the layers fit the input and end in one output per
 * label, that every train.freeze entry names a layer and something still
 * trains - is checked here, with the messages and "file:line:" places the
 * loader would have given (th_config.at).
 */
#ifndef THORAX_RUN_CONFIG_H
#define THORAX_RUN_CONFIG_H

#include "thorax/config.h"
#include "thorax/error.h"

/* The checks above on a loaded config. */
int th_run_config_check(const th_config *cfg, th_err *err);

/* th_config_load / th_config_load_string, then th_run_config_check: how
 * every command and run reads a configuration. */
int th_run_config_load(th_config *cfg, const char *path, const char *const *sets, int n_sets, th_err *err);
int th_run_config_load_string(th_config *cfg, const char *yaml, const char *name, const char *const *sets,
                              int n_sets, th_err *err);

#endif
