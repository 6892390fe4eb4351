/* h5mpio.c - a communicator handed to parallel HDF5 (see thorax/dist.h).
 *
 * The dataset reader opens its file with MPI-IO; the file-access property
 * list is the only HDF5 object that needs to know the communicator, so it is
 * made here and the reader spells no MPI. */
#include "thorax/dist.h"

#include <hdf5.h>

int th_dist_h5_mpio(int64_t fapl, th_comm comm, th_err *err)
{
    if (H5Pset_fapl_mpio((hid_t)fapl, comm, MPI_INFO_NULL) < 0)
        return th_errf(err, "cannot set up MPI-IO for parallel HDF5");
    return 0;
}
