/* thorax.h - all of Thorax for a host program, one module header each:
 *
 *   util    errors, files, clocks, random numbers        (libc)
 *   spec    plain descriptions of a network              (libc)
 *   nn      layers, the model, losses, optimisers        (BLAS, OpenMP)
 *   dist    collectives over flat spans                  (MPI)
 *   data    datasets, images, splits, augmentation       (HDF5, libpng)
 *   config  the experiment file                          (libyaml)
 *   render  plots, PNG writing, overlays                 (cairo, libpng)
 *   train   the step, the loop, checkpoints, prediction
 *   eval    evaluation, CAMs, reports
 *
 * A module uses only those above it in its own rule (CMakeLists.txt, checked
 * by tests/tools/check_modules.sh); include the one you need, or this.
 */
#ifndef THORAX_H
#define THORAX_H

#include "thorax/util.h"
#include "thorax/spec.h"
#include "thorax/nn.h"
#include "thorax/dist.h"
#include "thorax/data.h"
#include "thorax/config.h"
#include "thorax/render.h"
#include "thorax/train.h"
#include "thorax/eval.h"

#endif
