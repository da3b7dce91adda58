/* A stand-in libmembank of another ABI (0.3.0): the Python package must
 * refuse it by its mb_version() (tests/python/test_membank.py). */
const char *mb_version(int *number);

const char *mb_version(int *number)
{
	if (number)
		*number = 300;
	return "0.3.0";
}
